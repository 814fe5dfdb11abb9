"""``tollgate tenants set-webhook | notices | redrive-notices``: threshold notices (issue 14).

``set-webhook`` registers the tenant's notification URL and prints its signing secret once
(registering again replaces the URL and makes a new secret). ``notices`` lists the tenant's
``usage.threshold`` notices and their delivery state (``--failed``: the dead letters only);
``redrive-notices`` sends failed ones again. docs/billing.md ("Threshold notices").
"""

from __future__ import annotations

import re
from typing import Any, Final

import typer

from functions.notices.signing import new_secret
from functions.notices.store import FAILED, NoticeStore
from functions.notices.urls import InvalidWebhookUrl, check_url
from tollgate.cli.context import BadInput, connect, emit, note, service

_MONTH: Final = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
NOTICE_COLUMNS: Final = (
    ("id", "id"),
    ("period", "period"),
    ("metric", "metric"),
    ("threshold_pct", "%"),
    ("used", "used"),
    ("limit", "limit"),
    ("status", "status"),
    ("attempts", "attempts"),
    ("last_error", "last error"),
    ("delivered_at", "delivered at"),
)
ROW_FIELDS: Final = (
    "id", "tenant_id", "period", "metric", "threshold_pct", "used", "limit", "status",
    "attempts", "redrives", "last_error", "created_at", "delivered_at",
)  # fmt: skip


def _store(ctx: typer.Context, tenant_id: str) -> NoticeStore:
    """The notices table (after --local/--stack took effect), once the tenant is known."""
    service(ctx).get_tenant(tenant_id)  # unknown tenant: exit 2
    from functions.common.models import Notice

    return NoticeStore(Notice.Meta.table_name)


def _row(item: dict[str, Any]) -> dict[str, Any]:
    return {name: item.get(name) for name in ROW_FIELDS}


def register(app: typer.Typer) -> None:
    """Add the commands to the ``tenants`` group."""

    @app.command("set-webhook")
    def set_webhook(
        ctx: typer.Context,
        tenant_id: str = typer.Argument(...),
        url: str = typer.Option(
            ...,
            "--url",
            metavar="URL",
            help="https:// (http://127.0.0.1, localhost or [::1] only with --local).",
        ),
    ) -> None:
        """Register the tenant's notice URL; prints a new signing secret, once."""
        state = connect(ctx)
        try:
            check_url(url, local=not state.stack)
        except InvalidWebhookUrl as exc:
            raise BadInput(str(exc)) from None
        store = _store(ctx, tenant_id)
        secret = new_secret()
        saved = store.put_webhook(tenant_id, url=url, secret=secret)
        out = {**saved, "secret": secret}
        emit(ctx, out, lambda c, r: _shown(c, r))
        note(ctx, "The signing secret is shown once: store it where the receiver can read it.")

    @app.command("notices")
    def notices(
        ctx: typer.Context,
        tenant_id: str = typer.Argument(...),
        failed: bool = typer.Option(False, "--failed", help="Only dead letters (failed)."),
        period: str | None = typer.Option(None, "--period", metavar="YYYY-MM"),
    ) -> None:
        """The tenant's usage.threshold notices and their delivery state."""
        connect(ctx)
        if period is not None and not _MONTH.fullmatch(period):
            raise BadInput(f"--period must be YYYY-MM, not {period[:20]!r}")
        rows = [_row(i) for i in _store(ctx, tenant_id).list_notices(tenant_id)]
        if failed:
            rows = [r for r in rows if r["status"] == FAILED]
        if period is not None:
            rows = [r for r in rows if r["period"] == period]
        from tollgate.cli import render

        emit(ctx, rows, lambda c, r: render.table(c, r, NOTICE_COLUMNS))

    @app.command("redrive-notices")
    def redrive_notices(
        ctx: typer.Context,
        tenant_id: str = typer.Argument(...),
        notice_id: str | None = typer.Option(
            None, "--id", metavar="NOTICE_ID", help="One failed notice (default: every one)."
        ),
    ) -> None:
        """Send the tenant's failed notices again (same id, freshly signed)."""
        connect(ctx)
        store = _store(ctx, tenant_id)
        found = store.list_notices(tenant_id)
        if notice_id is not None:
            found = [i for i in found if i.get("id") == notice_id]
            if not found:
                raise BadInput(f"no notice {notice_id!r} for tenant {tenant_id!r}")
            if found[0].get("status") != FAILED:
                raise BadInput(f"notice {notice_id!r} is {found[0].get('status')}, not failed")
        redriven = [
            str(i["id"])
            for i in found
            if i.get("status") == FAILED and store.redrive(tenant_id, str(i["sk"]))
        ]
        emit(
            ctx,
            {"tenant_id": tenant_id, "redriven": redriven},
            lambda c, r: c.print(f"Redriven {len(r['redriven'])} notice(s) of {tenant_id}"),
        )


def _shown(console: Any, row: dict[str, Any]) -> None:
    from tollgate.cli import render

    render.record(console, row, f"Webhook of {row['tenant_id']}")
