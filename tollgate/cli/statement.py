"""``tollgate statement``: a tenant's monthly statement (live usage only), CSV, JSON or HTML.

Line items by model, principal and plan with the plan's unit prices; the totals are the
exact sum of the month's live usage events (functions/statements/logic.py). ``--format
html`` writes one self-contained page (functions/statements/html.py) to a file, never to
stdout: with ``--json`` stdout holds one document naming the file.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Final

import typer
from rich.console import Console
from rich.text import Text

from functions.statements import html
from functions.statements.logic import Statement, StatementMismatch
from functions.statements.service import daily
from functions.statements.service import statement as build_statement
from functions.usage.reports import UsageQueryError
from tollgate.cli import render
from tollgate.cli.context import BadInput, console, current_month, service, state

FORMATS: Final = ("csv", "json", "html")


def default_out(tenant_id: str, period: str) -> str:
    """The file ``--format html`` writes without ``--out`` (in the current directory)."""
    return f"statement-{tenant_id}-{period}.html"


def statement(
    ctx: typer.Context,
    tenant: str = typer.Option(..., "--tenant", metavar="TENANT_ID"),
    period: str | None = typer.Option(
        None, "--period", metavar="YYYY-MM", help="Default: the current UTC month."
    ),
    fmt: str | None = typer.Option(
        None,
        "--format",
        metavar="csv|json|html",
        help="Default: a table (JSON with --json). html writes a file (--out).",
    ),
    out: str | None = typer.Option(
        None,
        "--out",
        metavar="FILE",
        help="Write the statement to FILE (html default: statement-TENANT-PERIOD.html).",
    ),
) -> None:
    """The invoice-ready statement of a tenant for a month (test keys never appear)."""
    if fmt is not None and fmt not in FORMATS:
        raise BadInput("--format must be csv, json or html")
    if out is not None and fmt is None:
        raise BadInput("--out needs --format csv, json or html")
    if out is not None:
        _check_writable(out)
    service(ctx).get_tenant(tenant)
    try:
        result = build_statement(tenant, period or current_month())
    except UsageQueryError as exc:
        raise BadInput(str(exc)) from None
    except StatementMismatch as exc:
        raise RuntimeError(str(exc)) from None
    if fmt == "html":
        page = html.render(result.as_dict(), daily(result.tenant_id, result.period))
        _written(ctx, result, "html", out or default_out(result.tenant_id, result.period), page)
    elif out is not None:
        _written(ctx, result, str(fmt), out, _text(result, str(fmt)))
    elif fmt is not None:
        sys.stdout.write(_text(result, fmt))
    elif state(ctx).json:
        sys.stdout.write(_text(result, "json"))
    else:
        _show(console(), result.as_dict())


def _text(result: Statement, fmt: str) -> str:
    return result.to_csv() if fmt == "csv" else json.dumps(result.as_dict(), indent=2) + "\n"


def _check_writable(out: str) -> None:
    """Refuse an ``--out`` that cannot be written before any work is done (exit 2)."""
    path = Path(out)
    if path.is_dir():
        raise BadInput(f"--out {out!r} is a directory; name a file")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise BadInput(f"--out {out!r}: directory {str(parent)!r} does not exist")


def _written(ctx: typer.Context, result: Statement, fmt: str, out: str, text: str) -> None:
    """Write ``text`` to ``out`` whole or not at all (a temporary file renamed over it),
    then say so: one JSON document with ``--json``, one line otherwise."""
    path = Path(out)
    data = text.encode("utf-8")
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=".statement-", dir=path.parent if str(path.parent) else "."
        )
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise BadInput(f"cannot write --out {out!r}: {exc.strerror or exc}") from None
    doc = result.as_dict()
    summary = {
        "tenant_id": result.tenant_id,
        "period": result.period,
        "format": fmt,
        "path": str(path.resolve()),
        "bytes": len(data),
        "line_items": len(result.lines),
        "totals": doc["totals"],
    }
    if state(ctx).json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    else:
        console().print(
            Text(
                f"Statement {result.tenant_id} {result.period} ({fmt}, {len(result.lines)} "
                f"line items, {doc['currency']} {doc['totals']['amount_usd']}) written to "
                f"{summary['path']}"
            )
        )


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
         ("cached_tokens", "cached"), ("reasoning_tokens", "reasoning"),
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
