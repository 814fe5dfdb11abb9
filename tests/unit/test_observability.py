"""Each function logs and reports metrics under its own service name (issue 11, finding 7):
``POWERTOOLS_SERVICE_NAME`` as the stack sets it, "tollgate" where nothing sets it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from functions.common import observability

ROOT = Path(__file__).resolve().parents[2]

# One log line and one metric, as a handler writes them, printed by a fresh interpreter.
_EMIT = """
from functions.common.observability import logger, metrics, MetricUnit
logger.warning("hello")
metrics.add_metric(name="Probe", unit=MetricUnit.Count, value=1)
metrics.flush_metrics()
"""


def emitted(service_env: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The log line and the EMF document a function writes with this environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_")}
    env["POWERTOOLS_LOG_LEVEL"] = "INFO"
    if service_env is not None:
        env["POWERTOOLS_SERVICE_NAME"] = service_env
    done = subprocess.run(
        [sys.executable, "-c", _EMIT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    (log,) = [line for line in lines if line.get("message") == "hello"]
    (emf,) = [line for line in lines if "_aws" in line]
    return log, emf


def test_service_name_is_the_environments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "tollgate-authorizer")
    assert observability.service_name() == "tollgate-authorizer"


@pytest.mark.parametrize("value", [None, "", "  "])
def test_service_name_defaults_to_tollgate(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("POWERTOOLS_SERVICE_NAME", raising=False)
    else:
        monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", value)
    assert observability.service_name() == observability.DEFAULT_SERVICE == "tollgate"


def test_each_function_logs_and_reports_metrics_under_its_own_service() -> None:
    """Finding 7: the module no longer overrides ``POWERTOOLS_SERVICE_NAME`` with "tollgate"."""
    log, emf = emitted("tollgate-api")
    assert log["service"] == "tollgate-api"
    assert emf["service"] == "tollgate-api"
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == observability.METRICS_NAMESPACE == "Tollgate"
    assert directive["Dimensions"] == [["service"]]
    assert emf["Probe"] == [1.0]


def test_without_a_service_name_the_local_stack_and_cli_log_as_tollgate() -> None:
    log, emf = emitted(None)
    assert log["service"] == emf["service"] == "tollgate"
