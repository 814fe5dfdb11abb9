"""``tollgate exposure``: what a (leaked) key could do and what it did."""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

from tollgate.cli import render
from tollgate.cli.context import BadInput, connect, emit

USAGE_COLUMNS = (
    ("window", "window"),
    ("requests", "requests"),
    ("errors", "errors"),
    ("prompt_tokens", "prompt"),
    ("completion_tokens", "completion"),
    ("cost_usd", "cost USD"),
)


def exposure(
    ctx: typer.Context,
    key_id: str | None = typer.Argument(None, metavar="KEY_ID"),
    secret: str | None = typer.Option(
        None, "--secret", metavar="SECRET", help="A leaked secret ('-': read it from stdin)."
    ),
) -> None:
    """Environment, tenant, principal, scopes, status, delegated keys, first and last use,
    usage over 24h/7d/30d and the source addresses of a key (never its secret)."""
    from functions.respond.exposure import report

    if (key_id is None) == (secret is None):
        raise BadInput("give exactly one of KEY_ID or --secret")
    if secret == "-":  # noqa: S105 - "-" means stdin, not a password
        secret = sys.stdin.readline().strip()
    connect(ctx)
    emit(ctx, report(key_id=key_id, secret=secret), _render)


def _render(console: Console, r: dict[str, Any]) -> None:
    billable = "billable live key" if r["billable"] else "test key (echo model only, not billed)"
    console.print(Text(f"Exposure of {r['key_id']}: {billable}", style="bold"))
    facts = {
        name: r.get(name)
        for name in (
            "tenant_id", "principal", "environment", "scopes", "status", "gate_status",
            "status_reason", "parent_key_id", "created_at", "expires_at", "first_use",
            "last_use", "distinct_sources_30d", "as_of",
        )
    }  # fmt: skip
    render.record(console, facts)
    rows = [{"window": name, **totals} for name, totals in r["usage"].items()]
    render.table(console, rows, USAGE_COLUMNS)
    if not r.get("complete", True):
        console.print(
            Text(f"(usage counted since {r.get('counted_since')}: too many events)", style="dim")
        )
    console.print(Text("Delegated keys", style="bold"))
    render.table(console, r.get("children", []), render.KEY_COLUMNS)
    console.print(Text("Source addresses (30 days, busiest first)", style="bold"))
    render.table(
        console,
        r.get("sources", []),
        (("ip", "address"), ("requests", "requests"), ("last_seen", "last seen")),
    )
