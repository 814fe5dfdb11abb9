"""``tollgate prices``: the per-model price catalogue (set, list).

Prices are USD per 1M tokens, as typed (at most six decimals; stored as integer
micro-dollars: functions/pricing/money.py). Which price a request pays is decided by
functions/pricing/catalogue.py (plan override > plan flat price > operator > genai-prices >
free) and fixed into its usage event.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.text import Text

from tollgate.cli import render
from tollgate.cli.context import emit, service

app = typer.Typer(help="Per-model prices (USD per 1M tokens).", no_args_is_help=True)

PRICE_COLUMNS = (
    ("model", "model"),
    ("prompt_usd_per_1m", "prompt"),
    ("completion_usd_per_1m", "completion"),
    ("cached_prompt_usd_per_1m", "cached prompt"),
    ("reasoning_usd_per_1m", "reasoning"),
    ("source", "source"),
)


@app.command("set")
def set_(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="A model Tollgate routes, e.g. upstream:gpt-4o."),
    prompt: str = typer.Option(..., "--prompt", metavar="USD", help="Per 1M prompt tokens."),
    completion: str = typer.Option(
        ..., "--completion", metavar="USD", help="Per 1M completion tokens."
    ),
    cached_prompt: str | None = typer.Option(
        None,
        "--cached-prompt",
        metavar="USD",
        help="Per 1M cached prompt tokens (default: prompt).",
    ),
    reasoning: str | None = typer.Option(
        None, "--reasoning", metavar="USD", help="Per 1M reasoning tokens (default: completion)."
    ),
) -> None:
    """Set the operator's price of a model (applies to requests from now on)."""
    row = service(ctx).set_price(
        model, prompt=prompt, completion=completion, cached_prompt=cached_prompt,
        reasoning=reasoning,
    )  # fmt: skip
    emit(ctx, row, lambda c, r: render.record(c, r, f"Price of {r['model']} set"))


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """Every model price, its source (operator | genai-prices) and the plans' own prices."""
    emit(ctx, service(ctx).list_prices(), _show)


def _show(console: Console, data: dict[str, Any]) -> None:
    snap = data["genai_prices"]
    console.print(
        Text(
            f"USD per 1M tokens. Defaults: {snap['package']} {snap['version']} "
            f"(newest price dated {snap['newest_price_date'] or 'unknown'}).",
            style="bold",
        )
    )
    render.table(console, data["prices"], PRICE_COLUMNS)
    if data["plan_prices"]:
        console.print(Text("Plan prices (override the above; '*' = every model):", style="bold"))
        render.table(console, data["plan_prices"], (("plan", "plan"), *PRICE_COLUMNS))
