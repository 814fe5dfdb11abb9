"""Human renderings (rich) of the service's views. ``--json`` bypasses all of this."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text


def _plain(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value) or "-"
    if isinstance(value, dict):
        return "; ".join(f"{k}={_plain(v)}" for k, v in value.items()) or "-"
    return str(value)


def _cell(value: Any) -> Text:
    return Text("-", style="dim") if value is None else Text(_plain(value))


def table(
    console: Console, rows: Sequence[dict[str, Any]], columns: Iterable[tuple[str, str]]
) -> None:
    """A table of ``rows`` with ``(field, heading)`` columns; a note if there are none."""
    cols = list(columns)
    if not rows:
        console.print(Text("(none)", style="dim"))
        return
    out = Table(show_edge=False, header_style="bold")
    for name, heading in cols:
        no_wrap = name.endswith("_id") or name in ("at", "name")
        out.add_column(heading, no_wrap=no_wrap, overflow="fold")
    for row in rows:
        out.add_row(*(_cell(row.get(name)) for name, _ in cols))
    console.print(out)


def record(console: Console, row: dict[str, Any], title: str | None = None) -> None:
    """One item as a two-column field/value table."""
    out = Table(show_header=False, show_edge=False, title=title, title_justify="left")
    out.add_column(style="bold", no_wrap=True)
    out.add_column(overflow="fold")
    for name, value in row.items():
        out.add_row(Text(name), _cell(value))
    console.print(out)


def unlimited(value: Any) -> Any:
    return "unlimited" if value is None else value


PLAN_COLUMNS = (
    ("name", "plan"),
    ("requests_per_minute", "req/min"),
    ("requests_per_month", "req/month"),
    ("tokens_per_month", "tokens/month"),
    ("scopes", "scopes"),
    ("models", "models"),
    ("price_per_1k_prompt", "USD/1k prompt"),
    ("price_per_1k_completion", "USD/1k completion"),
    ("spike_policy", "spike"),
)

TENANT_COLUMNS = (
    ("tenant_id", "tenant"),
    ("plan", "plan"),
    ("status", "status"),
    ("requests_per_minute", "req/min"),
    ("requests_per_month", "req/month"),
    ("tokens_per_month", "tokens/month"),
    ("keys", "keys"),
    ("created_at", "created"),
)

KEY_COLUMNS = (
    ("key_id", "key"),
    ("environment", "env"),
    ("principal", "principal"),
    ("scopes", "scopes"),
    ("status", "status"),
    ("status_reason", "reason"),
    ("parent_key_id", "parent"),
    ("expires_at", "expires"),
)

AUDIT_COLUMNS = (
    ("at", "at"),
    ("action", "action"),
    ("key_id", "key"),
    ("tenant_id", "tenant"),
    ("actor", "actor"),
    ("reason", "reason"),
    ("details", "details"),
)


def limits(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with None limits shown as ``unlimited``."""
    names = ("requests_per_minute", "requests_per_month", "tokens_per_month",
             "test_requests_per_month", "test_tokens_per_month", "spend_per_month")  # fmt: skip
    return [{k: unlimited(v) if k in names else v for k, v in r.items()} for r in rows]


def issued(console: Console, key: dict[str, Any], verb: str = "Created") -> None:
    """A key just issued, with its secret: the only time it is ever shown."""
    who = f"{key['environment']} key for tenant {key['tenant_id']}, principal {key['principal']}"
    console.print(Text(f"{verb} {key['key_id']} ({who})", style="bold"))
    console.print(Text("Secret (shown once, store it now): ", style="yellow"), end="")
    console.out(key["secret"], highlight=False)
    details = {
        "scopes": key["scopes"],
        "expires_at": key["expires_at"] or "never",
    }
    for name in ("parent_key_id", "token_budget", "spend_budget", "serial", "grace_until"):
        if key.get(name) is not None:
            details[name] = key[name]
    record(console, details)
