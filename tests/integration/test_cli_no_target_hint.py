"""Finding 6 of issue 11 (and the bad-input half of finding 1): ``tollgate`` with neither
``--local`` nor ``--stack`` is exit 2 with a one-line hint and nothing on stdout, ``--json``
or not, never a raw SDK error ("GetError: ... You must specify a region."). Help and
``detect backtest`` (which needs no AWS) keep working without either."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Run

NEEDS_AWS = [
    ("plans", "list"),
    ("plans", "create", "pro"),
    ("tenants", "show", "acme"),
    ("keys", "list", "--tenant", "acme"),
    ("keys", "revoke", "key_0000000000000000", "--reason", "leaked"),
    ("keys", "revoke", "--tenant", "acme", "--principal", "bot", "--reason", "r"),
    ("usage", "--tenant", "acme"),
    ("usage", "reconcile", "--tenant", "acme"),
    ("usage", "dead-letters"),
    ("statement", "--tenant", "acme"),
    ("exposure", "key_0000000000000000"),
    ("audit",),
    ("detect", "backtest", "trace.jsonl", "--plan", "pro"),
    ("finetune", "create", "--tenant", "acme", "--base-model", "tollgate-echo"),
]


@pytest.fixture
def nowhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """No AWS_ENDPOINT_URL: nothing but the options says where Tollgate runs."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")


@pytest.mark.parametrize("json_out", [True, False], ids=["json", "human"])
@pytest.mark.parametrize("argv", NEEDS_AWS, ids=" ".join)
def test_no_local_no_stack_is_a_one_line_hint(
    bad_input: Any, nowhere: None, argv: tuple[str, ...], json_out: bool
) -> None:
    result = bad_input(*argv, json=json_out)
    assert "--local" in result.err and "--stack NAME" in result.err, result.err


def test_bad_input_without_local_or_stack_is_exit_2_and_nothing_on_stdout(
    bad_input: Any, nowhere: None
) -> None:
    bad_input("keys", "revoke", "key_0000000000000000", "--tenant", "acme", "--reason", "r")
    assert "Missing option" in bad_input("keys", "revoke", "key_0000000000000000").err
    assert "No such option" in bad_input("plans", "list", "--bogus").err
    assert "--period" in bad_input("--local", "usage", "reconcile", "--period").err


def test_help_and_backtest_need_neither(cli: Run, nowhere: None, tmp_path: Path) -> None:
    assert cli("keys", "revoke", "--help", json=False).ok().out.startswith("Usage:")
    assert cli("--help", json=False).ok().out.startswith("Usage:")
    trace = tmp_path / "t.jsonl.gz"
    with gzip.open(trace, "wt", encoding="utf-8") as f:
        for n in range(5):
            f.write(json.dumps({"ts": 1_793_491_200_000 + n, "tenant_id": "acme",
                                "key_id": "key_a", "environment": "live", "plan": "p",
                                "status": "ok", "prompt_tokens": 1,
                                "completion_tokens": 1}) + "\n")  # fmt: skip
    report = cli("detect", "backtest", str(trace)).ok().json
    assert report["events"] == 5 and report["suspensions"] == []


def test_a_real_process_without_region_gets_the_hint_not_an_sdk_error() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = subprocess.run(
        [sys.executable, "-m", "tollgate", "--json", "plans", "list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith("error: say where Tollgate runs: --local")
    assert done.stderr.count("\n") == 1 and "region" not in done.stderr
