"""``tollgate detect backtest``: the spike detector over a recorded trace, writing nothing."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

from tollgate.cli import render
from tollgate.cli.context import BadInput, emit, service

app = typer.Typer(help="The spike detector.", no_args_is_help=True)

SUSPENSION_COLUMNS = (
    ("key_id", "key"),
    ("tenant_id", "tenant"),
    ("at", "would be suspended at (event time)"),
    ("signal", "signal"),
    ("observed", "observed"),
    ("baseline", "baseline"),
    ("threshold", "threshold"),
    ("unit", "unit"),
    ("blocked_events", "later events refused"),
)
ALERT_COLUMNS = (
    ("key_id", "key"),
    ("at", "at (event time)"),
    ("signal", "signal"),
    ("observed", "observed"),
    ("threshold", "threshold"),
    ("unit", "unit"),
)
SOURCE_COLUMNS = (
    ("source", "source"),
    ("at", "flagged at (event time)"),
    ("observed", "observed"),
    ("unit", "unit"),
)


def read_trace(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a ``.jsonl`` or ``.jsonl.gz`` trace, one per line."""
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except ValueError:
                    raise BadInput(f"{path.name}, line {number}: not JSON") from None
                if not isinstance(item, dict):
                    raise BadInput(f"{path.name}, line {number}: not a JSON object")
                yield item
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read {path}: {exc}") from None


@app.command("backtest")
def backtest(
    ctx: typer.Context,
    trace_file: str = typer.Argument(..., metavar="TRACE.jsonl", help="Usage events, .jsonl[.gz]."),
    plan: str | None = typer.Option(
        None, "--plan", metavar="NAME", help="Use this plan's spike settings for every key."
    ),
    policy: str | None = typer.Option(None, "--policy", metavar="suspend|alert|off"),
    factor: float | None = typer.Option(None, "--spike-factor", metavar="X"),
    floor: int | None = typer.Option(None, "--spike-floor-tpm", metavar="N"),
) -> None:
    """When the detector would have suspended each key of a recorded trace (writes nothing).

    Without --plan, the defaults of a new plan (suspend, factor 10, floor 1000 tokens/min);
    --plan reads that plan from the tables; --policy, --spike-factor and --spike-floor-tpm
    override either.
    """
    from functions.detector import backtest as bt
    from functions.detector.logic import DEFAULT_POLICY, Policy
    from functions.keys import rules

    base = DEFAULT_POLICY
    if plan is not None:
        p = service(ctx).get_plan(plan)
        base = Policy.of(p["spike_policy"], p["spike_factor"], p["spike_floor_tpm"])
    chosen = Policy.of(
        rules.spike_policy(policy) if policy is not None else base.mode,
        rules.spike_factor(factor) if factor is not None else base.factor,
        rules.limit("spike floor", floor) if floor is not None else base.floor_tpm,
    )
    trace = Path(trace_file)
    if not trace.is_file():
        raise BadInput(f"no such trace file: {trace}")
    report = bt.run(read_trace(trace), policy_for=lambda _plan: chosen)
    result = report.as_dict()
    result["trace"] = str(trace)
    result["policy"] = {"mode": chosen.mode, "factor": chosen.factor, "floor_tpm": chosen.floor_tpm}
    emit(ctx, result, _render)


def _render(console: Console, r: dict[str, Any]) -> None:
    p = r["policy"]
    console.print(
        Text(
            f"Backtest of {r['trace']}: {r['events']} events ({r['usage_events']} usage, "
            f"{r['refusals']} refusals, {r['skipped']} skipped) over {r['keys']} keys in "
            f"{r['elapsed_s']} s ({r['events_per_s']} events/s); policy {p['mode']}, "
            f"factor {p['factor']:g}, floor {p['floor_tpm']} tokens/min. Nothing was written.",
        )
    )
    console.print(Text(f"Would suspend {len(r['suspensions'])} key(s)", style="bold"))
    render.table(console, r["suspensions"], SUSPENSION_COLUMNS)
    if r["alerts"]:
        console.print(Text(f"Alerts without suspension: {len(r['alerts'])}", style="bold"))
        render.table(console, r["alerts"], ALERT_COLUMNS)
    if r["sources"]:
        console.print(Text(f"Sources flagged for stuffing: {len(r['sources'])}", style="bold"))
        render.table(console, r["sources"], SOURCE_COLUMNS)
