"""``tollgate statement``: a tenant's monthly statement (live usage only), CSV or JSON.

Line items by model, principal and plan with the plan's unit prices; the totals are the
exact sum of the month's live usage events (functions/statements/logic.py).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

from functions.statements.logic import StatementMismatch
from functions.statements.service import statement as build_statement
from functions.usage.reports import UsageQueryError
from tollgate.cli import render
from tollgate.cli.context import BadInput, console, current_month, service, state


def statement(
    ctx: typer.Context,
    tenant: str = typer.Option(..., "--tenant", metavar="TENANT_ID"),
    period: str | None = typer.Option(
        None, "--period", metavar="YYYY-MM", help="Default: the current UTC month."
    ),
    fmt: str | None = typer.Option(
        None, "--format", metavar="csv|json", help="Default: a table (JSON with --json)."
    ),
) -> None:
    """The invoice-ready statement of a tenant for a month (test keys never appear)."""
    if fmt is not None and fmt not in ("csv", "json"):
        raise BadInput("--format must be csv or json")
    service(ctx).get_tenant(tenant)
    try:
        result = build_statement(tenant, period or current_month())
    except UsageQueryError as exc:
        raise BadInput(str(exc)) from None
    except StatementMismatch as exc:
        raise RuntimeError(str(exc)) from None
    if fmt == "csv":
        sys.stdout.write(result.to_csv())
    elif fmt == "json" or state(ctx).json:
        sys.stdout.write(json.dumps(result.as_dict(), indent=2) + "\n")
    else:
        _show(console(), result.as_dict())


def _show(console: Console, data: dict[str, Any]) -> None:
    console.print(
        Text(f"Statement {data['tenant_id']} {data['period']} ({data['currency']})", style="bold")
    )
    render.table(
        console,
        data["line_items"],
        [("model", "model"), ("principal", "principal"), ("plan", "plan"),
         ("requests", "requests"), ("prompt_tokens", "prompt tokens"),
         ("completion_tokens", "completion tokens"),
         ("unit_price_prompt_per_1k_usd", "USD/1k prompt"),
         ("unit_price_completion_per_1k_usd", "USD/1k completion"),
         ("amount_usd", "amount USD")],
    )  # fmt: skip
    t = data["totals"]
    console.print(
        Text(
            f"Total: {t['requests']} requests, {t['prompt_tokens']} prompt + "
            f"{t['completion_tokens']} completion tokens, USD {t['amount_usd']}",
            style="bold",
        )
    )
    console.print(Text(data["note"], style="dim"))
    if data.get("by_tag"):  # keyattrs
        console.print(Text("By key tag", style="bold"))
        render.table(
            console,
            data["by_tag"],
            [("tag", "tag"), ("requests", "requests"), ("prompt_tokens", "prompt tokens"),
             ("completion_tokens", "completion tokens"), ("amount_usd", "amount USD")],
        )  # fmt: skip
        console.print(Text(data["by_tag_note"], style="dim"))
