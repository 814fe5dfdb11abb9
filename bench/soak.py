"""The soak's figures (``make soak``, shorter): the whole local stack under concurrent OpenAI SDK
and HTTP clients, DynamoDB faults, stream handler crashes and mid-run revocations, and each
invariant of docs/design.md measured afterwards (docs/soak.md).

It runs ``python -m tollgate.local.soak`` in a fresh process (its own moto and its own
GIL, whatever the other sections left behind) and copies its table into the report: each
invariant row with its target and whether it was met."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import Section

DURATION_S = int(os.environ.get("TOLLGATE_BENCH_SOAK_S", "20"))
CLIENTS = 12


def run() -> Section:
    section = Section("soak")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    env.pop("TOLLGATE_FAULTS", None)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "soak.json"
        proc = subprocess.run(
            [sys.executable, "-m", "tollgate.local.soak", "--duration", str(DURATION_S),
             "--clients", str(CLIENTS), "--outage-every", str(max(DURATION_S // 2, 5)),
             "--json", str(out), "--log", str(Path(tmp) / "soak.log")],
            env=env, capture_output=True, text=True, timeout=DURATION_S + 600, check=False,
        )  # fmt: skip
        if not out.exists():
            section.add("soak run", "did not finish", ok=False, note=proc.stderr[-300:])
            return section
        report = json.loads(out.read_text())
    section.add(
        "soak: all invariants hold",
        "yes" if report["ok"] else "no",
        target="yes",
        ok=bool(report["ok"]),
        note=f"{DURATION_S} s, {CLIENTS} clients; `make soak` runs 60 s (docs/soak.md)",
    )
    refused: list[str] = []
    for row in report["rows"]:
        if row["group"] == "refused":
            refused.append(f"{row['name']}: {row['value']}")
            continue
        section.add(
            f"{row['group']}: {row['name']}",
            row["value"],
            target=row["target"],
            ok=row["ok"],
            note=row["note"],
        )
    section.add("refused, by status and code", "; ".join(refused))
    return section
