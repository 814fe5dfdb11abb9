"""Finding 6 of issue 11: the README tour ran only in November 2026 (``--period 2026-11``).
Its code block runs here verbatim, with bash, on whatever date this is, against moto
through ``--local`` (the tour's own commands; a ``demo`` tenant seeded as ``make local``
seeds it), and every command succeeds."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

from functions.keys import KeyService
from tollgate.local.__main__ import STARTER_PLAN
from tollgate.local.aws import MotoServer

ROOT = Path(__file__).resolve().parents[2]


def tour() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## A tour", 1)[1]
    return section.split("```\n", 2)[1]


def test_the_tour_names_no_date() -> None:
    assert not re.search(r"--period\s+\d{4}-\d{2}", tour()), tour()


def test_the_tour_runs_verbatim(dynamodb: Any, moto_server: MotoServer) -> None:
    KeyService().seed(
        tenant_id="demo", plan="starter", plan_options=STARTER_PLAN, principal="demo-app"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_")}
    env.pop("AWS_ENDPOINT_URL", None)  # --local alone, as a user has it
    env["TOLLGATE_AWS_PORT"] = str(moto_server.port)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", tour()],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    assert "error:" not in done.stderr, done.stderr
    assert "Revoked 2 key(s)" in done.stdout  # the key and its delegated key
    assert "Would suspend" in done.stdout and "Registered fine-tuning job" in done.stdout
