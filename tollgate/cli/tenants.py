"""``tollgate tenants``: create, list, show, set-plan."""

from __future__ import annotations

import typer

from tollgate.cli import render
from tollgate.cli.context import emit, service

app = typer.Typer(help="Tenants: who is billed, on which plan.", no_args_is_help=True)


@app.command("create")
def create(
    ctx: typer.Context,
    tenant_id: str = typer.Argument(..., help="1-64 of A-Z a-z 0-9 _ -."),
    plan: str = typer.Option(..., "--plan", metavar="NAME", help="An existing plan."),
) -> None:
    """Create a tenant on a plan (the plan's limits are copied onto it)."""
    emit(
        ctx,
        service(ctx).create_tenant(tenant_id, plan=plan),
        lambda c, t: render.record(c, render.limits([t])[0], f"Created tenant {t['tenant_id']}"),
    )


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """Every tenant."""
    emit(
        ctx,
        service(ctx).list_tenants(),
        lambda c, rows: render.table(c, render.limits(rows), render.TENANT_COLUMNS),
    )


@app.command("show")
def show(ctx: typer.Context, tenant_id: str = typer.Argument(...)) -> None:
    """One tenant, with its limits and this month's counters."""
    emit(
        ctx,
        service(ctx).get_tenant(tenant_id),
        lambda c, t: render.record(c, render.limits([t])[0]),
    )


@app.command("set-plan")
def set_plan(
    ctx: typer.Context,
    tenant_id: str = typer.Argument(...),
    plan: str = typer.Argument(..., metavar="NAME"),
) -> None:
    """Move a tenant to another plan (limits and scopes re-copied; takes effect at once)."""
    emit(
        ctx,
        service(ctx).set_plan(tenant_id, plan),
        lambda c, t: render.record(c, render.limits([t])[0], f"Tenant {t['tenant_id']}"),
    )


# threshold notices (issue 14): set-webhook, notices, redrive-notices
from tollgate.cli import notices as _notices  # noqa: E402

_notices.register(app)
