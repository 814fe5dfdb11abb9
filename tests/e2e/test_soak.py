"""A short soak (``make soak`` for ~10 s): the local stack under concurrent SDK and HTTP
clients, DynamoDB faults, stream handler crashes and mid-run revocations, and every
invariant row of its table green.

The seed is new each run (``TOLLGATE_SOAK_SEED=N`` fixes it) and printed, with the command
that replays the run: a failure is a bug to replay, never bad luck (docs/soak.md). Nothing
here depends on how fast the machine is: the clients go on until ``MIN_REQUESTS`` were sent.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from typing import Any

import pytest

pytestmark = pytest.mark.slow
MIN_REQUESTS = 150


@pytest.fixture(scope="module")
def soak(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("soak")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    env["TOLLGATE_FAULTS"] = ""  # the soak sets its own faults
    seed = int(os.environ.get("TOLLGATE_SOAK_SEED") or random.SystemRandom().randrange(1, 2**31))
    print(f"soak seed {seed} (TOLLGATE_SOAK_SEED={seed} replays it)", file=sys.stderr)
    proc = subprocess.run(
        [sys.executable, "-m", "tollgate.local.soak", "--seed", str(seed), "--duration", "10",
         "--min-requests", str(MIN_REQUESTS), "--clients", "8", "--outage-every", "8",
         "--outage", "0.5", "--json", str(out / "soak.json"), "--log", str(out / "soak.log")],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert (out / "soak.json").exists(), f"seed {seed}: no report\n{proc.stdout}\n{proc.stderr}"
    report: dict[str, Any] = json.loads((out / "soak.json").read_text())
    assert report["seed"] == seed
    report["returncode"] = proc.returncode
    report["stdout"] = proc.stdout
    report["stderr"] = proc.stderr
    return report


def rows(report: dict[str, Any], group: str) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in report["rows"] if r["group"] == group}


def test_every_invariant_holds(soak: dict[str, Any]) -> None:
    failed = [f"{r['group']}: {r['name']} = {r['value']} ({r['note']})" for r in soak["rows"]
              if r["ok"] is False]  # fmt: skip
    replay = f"seed {soak['seed']}: {soak['config']['replay']}"
    assert failed == [], replay + "\n" + "\n".join(failed) + "\n" + soak["stdout"][-3000:]
    assert soak["ok"] is True and soak["returncode"] == 0
    assert "soak: all invariants hold" in soak["stdout"]


def test_the_table_covers_each_invariant(soak: dict[str, Any]) -> None:
    groups = {r["group"] for r in soak["rows"] if r["ok"] is not None}
    assert {"1 gate", "2 counters", "3 revocation", "4 usage", "5 test keys", "6 secrets",
            "7 errors"} <= groups  # fmt: skip


def test_it_ran_under_load_and_faults(soak: dict[str, Any]) -> None:
    traffic = rows(soak, "traffic")
    assert traffic["seed"]["value"] == soak["seed"]
    assert traffic["requests sent"]["value"] >= MIN_REQUESTS  # whatever the machine's speed
    assert traffic["admitted (authorizer allowed, no limit verdict)"]["value"] > 10
    assert "OpenAI SDK" in traffic["requests sent"]["note"]
    seen, failed = rows(soak, "faults")["DynamoDB requests seen / failed on purpose"][
        "value"
    ].split(" / ")
    assert int(seen) > 100 and int(failed) > 0
    assert any("revoke" in e for e in soak["events"])
    assert any("suspend" in e for e in soak["events"])
    assert any("leak" in e for e in soak["events"])
    refused = rows(soak, "refused")
    assert any(k.startswith("401 ") for k in refused)
    assert any(k.startswith("403 ") for k in refused)
