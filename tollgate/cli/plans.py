"""``tollgate plans``: create, list, show."""

from __future__ import annotations

import typer

from tollgate.cli import render
from tollgate.cli.context import emit, service, split_csv

app = typer.Typer(help="Plans: limits, scopes, models, prices, spike policy.", no_args_is_help=True)


@app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Plan name (1-64 of A-Z a-z 0-9 _ . -)."),
    requests_per_minute: int | None = typer.Option(
        None, "--requests-per-minute", metavar="N", help="Per key, per UTC minute."
    ),
    requests_per_month: int | None = typer.Option(
        None, "--requests-per-month", metavar="N", help="Per tenant, per UTC month."
    ),
    tokens_per_month: int | None = typer.Option(
        None, "--tokens-per-month", metavar="N", help="Prompt + completion, per tenant and month."
    ),
    test_requests_per_month: int | None = typer.Option(
        None,
        "--test-requests-per-month",
        metavar="N",
        help="Test keys' own requests per tenant and month (live keys never count here).",
    ),
    test_tokens_per_month: int | None = typer.Option(
        None,
        "--test-tokens-per-month",
        metavar="N",
        help="Test keys' own tokens per tenant and month.",
    ),
    counter_shards: int = typer.Option(
        1,
        "--counter-shards",
        metavar="N",
        help="Items a tenant's monthly counters are spread over, 1-64 (docs/capacity.md).",
    ),
    spend_per_month: str | None = typer.Option(
        None,
        "--spend-per-month",
        metavar="USD",
        help="A tenant's monthly live spend budget, e.g. 250.00 (test keys never count).",
    ),
    scopes: str | None = typer.Option(None, "--scopes", metavar="S,S", help="Default: all."),
    models: str | None = typer.Option(
        None, "--models", metavar="M,M", help="Default: tollgate-echo."
    ),
    tools: str | None = typer.Option(
        None, "--tools", metavar="T,T", help="Tools the plan entitles. Default: all."
    ),
    price_prompt: str = typer.Option("0", "--price-per-1k-prompt", metavar="USD"),
    price_completion: str = typer.Option("0", "--price-per-1k-completion", metavar="USD"),
    price: list[str] | None = typer.Option(  # noqa: B008 - typer reads a repeatable option so
        None,
        "--price",
        metavar="MODEL=PROMPT:COMPLETION[:CACHED[:REASONING]]",
        help="This plan's price of a model it lists, USD per 1M tokens (repeatable).",
    ),
    spike_policy: str = typer.Option(
        "suspend", "--spike-policy", metavar="suspend|alert|off", help="On a usage spike."
    ),
    spike_factor: float = typer.Option(10.0, "--spike-factor", metavar="X", help="> 1."),
    spike_floor_tpm: int = typer.Option(
        1000, "--spike-floor-tpm", metavar="N", help="Tokens/min below which nothing is a spike."
    ),
) -> None:
    """Create a plan. Limits left out are unlimited."""
    plan = service(ctx).create_plan(
        name,
        requests_per_minute=requests_per_minute,
        requests_per_month=requests_per_month,
        tokens_per_month=tokens_per_month,
        test_requests_per_month=test_requests_per_month,
        test_tokens_per_month=test_tokens_per_month,
        counter_shards=counter_shards,
        spend_per_month=spend_per_month,
        scopes=split_csv(scopes),
        models=split_csv(models),
        tools=split_csv(tools),
        price_per_1k_prompt=price_prompt,
        price_per_1k_completion=price_completion,
        spike_policy=spike_policy,
        spike_factor=spike_factor,
        spike_floor_tpm=spike_floor_tpm,
        model_prices=price,
    )
    emit(
        ctx, plan, lambda c, p: render.record(c, render.limits([p])[0], f"Created plan {p['name']}")
    )


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """Every plan."""
    emit(
        ctx,
        service(ctx).list_plans(),
        lambda c, rows: render.table(c, render.limits(rows), render.PLAN_COLUMNS),
    )


@app.command("show")
def show(ctx: typer.Context, name: str = typer.Argument(..., help="Plan name.")) -> None:
    """One plan."""
    emit(ctx, service(ctx).get_plan(name), lambda c, p: render.record(c, render.limits([p])[0]))
