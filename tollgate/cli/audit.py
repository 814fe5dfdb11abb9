"""``tollgate audit``: the append-only trail of key lifecycle events."""

from __future__ import annotations

import typer

from tollgate.cli import render
from tollgate.cli.context import emit, service


def audit(
    ctx: typer.Context,
    key: str | None = typer.Option(None, "--key", metavar="KEY_ID", help="Events of this key."),
    tenant: str | None = typer.Option(
        None, "--tenant", metavar="TENANT_ID", help="Events of this tenant."
    ),
) -> None:
    """Audit records, oldest first: who did what to which key, when and why."""
    emit(
        ctx,
        service(ctx).audit(key_id=key, tenant_id=tenant),
        lambda c, rows: render.table(c, rows, render.AUDIT_COLUMNS),
    )
