"""The exposure report: what a (leaked) key could do and what it did.

For one key, found by its id or by its secret: environment (a ``live`` key is billable, a
``test`` key only reaches the echo model), tenant, principal, scopes, status (the stored one
and the gate's, which the authorizer enforces), the keys delegated from it, first and last
use, and requests, errors, tokens and cost over the last 24 hours, 7 days and 30 days, with
the distinct source addresses seen in 30 days.

Usage comes from the raw usage events through the table's ``by_key`` index (key id, time),
newest first, reading only the attributes it sums. A key with more than ``max_events``
events in 30 days is reported as far back as was read, with ``complete: false`` and the time
of the oldest event counted: the shortest windows are always the exact ones.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

from pynamodb.exceptions import DoesNotExist

from functions.common import keyformat
from functions.common.models import GateItem, Key, Secret, UsageEvent
from functions.gate import admin as gate_admin
from functions.gate import items as gate_items
from functions.keys import rules
from functions.keys.errors import InvalidInput, NotFound, quote
from functions.keys.rules import micros_to_usd
from functions.keys.views import iso_seconds, key_view

WINDOWS: Final = (("24h", 86_400), ("7d", 7 * 86_400), ("30d", 30 * 86_400))
MAX_EVENTS: Final = 200_000
TOP_SOURCES: Final = 20
_FIELDS: Final = (
    "ts", "prompt_tokens", "completion_tokens", "cost_micros", "status", "source_ip",
)  # fmt: skip


@dataclass
class _Totals:
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_micros: int = 0

    def add(self, event: UsageEvent) -> None:
        self.requests += 1
        self.errors += event.status == "error"
        self.prompt_tokens += int(event.prompt_tokens or 0)
        self.completion_tokens += int(event.completion_tokens or 0)
        self.cost_micros += int(event.cost_micros or 0)

    def view(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "tokens": self.prompt_tokens + self.completion_tokens,
            "cost_usd": micros_to_usd(self.cost_micros),
        }


@dataclass
class _Sources:
    requests: Counter[str] = field(default_factory=Counter)
    last_seen: dict[str, int] = field(default_factory=dict)

    def add(self, event: UsageEvent) -> None:
        ip = str(event.source_ip or "-")
        self.requests[ip] += 1
        self.last_seen.setdefault(ip, int(event.ts))  # newest first: the first is the last

    def view(self) -> dict[str, Any]:
        top = [
            {"ip": ip, "requests": n, "last_seen": iso_seconds(self.last_seen[ip] / 1000)}
            for ip, n in self.requests.most_common(TOP_SOURCES)
        ]
        return {"distinct_30d": len(self.requests), "top": top}


def key_id_for_secret(secret: str) -> str:
    """The key id of a (leaked) secret; never echoes the secret."""
    parsed = keyformat.parse(secret.strip() if isinstance(secret, str) else secret)
    if parsed is None:
        raise InvalidInput("the secret is not a well-formed Tollgate key")
    try:
        return str(Secret.get(parsed.secret_hash, consistent_read=True).key_id)
    except DoesNotExist:
        raise NotFound("no key has this secret") from None


def _key(key_id: str) -> Key:
    rules.key_id(key_id)
    try:
        return Key.get(key_id, consistent_read=True)
    except DoesNotExist:
        raise NotFound(f"unknown key {quote(key_id)}") from None


def _gate_status(key: Key) -> str | None:
    entry = gate_admin.get_key_item(GateItem.Meta.table_name, key.key_id, key.parent_key_id)
    return None if entry is None else str(entry.get(gate_items.STATUS))


CHILD_FIELDS = (
    "key_id", "environment", "principal", "scopes", "status", "status_reason",
    "parent_key_id", "expires_at", "token_budget",
)  # fmt: skip  # every column the CLI shows for a key (tollgate/cli/render.py KEY_COLUMNS)


def _children(key: Key, now: float) -> list[dict[str, Any]]:
    found = []
    if not key.parent_key_id:
        for child_id in gate_admin.children(GateItem.Meta.table_name, key.key_id):
            try:
                found.append(Key.get(child_id, consistent_read=True))
            except DoesNotExist:
                continue
    return [
        {k: v for k, v in key_view(child, now).items() if k in CHILD_FIELDS}
        for child in sorted(found, key=lambda c: (c.created_at, c.key_id))
    ]


def _edge_use(key_id: str, newest: bool) -> str | None:
    for event in UsageEvent.by_key.query(
        key_id, scan_index_forward=not newest, limit=1, attributes_to_get=["ts"]
    ):
        return iso_seconds(int(event.ts) / 1000)
    return None


def report(
    *,
    key_id: str | None = None,
    secret: str | None = None,
    now: float | None = None,
    max_events: int = MAX_EVENTS,
    summary: bool = False,
) -> dict[str, Any]:
    """The exposure report of the key ``key_id`` or of the key holding ``secret``.

    ``summary``: leave out the children and the source list (what the revoke function
    returns per revoked key).
    """
    if (key_id is None) == (secret is None):
        raise InvalidInput("give exactly one of a key id or --secret")
    now = time.time() if now is None else now
    key = _key(key_id if key_id is not None else key_id_for_secret(str(secret)))
    view = key_view(key, now)

    totals = {name: _Totals() for name, _ in WINDOWS}
    sources = _Sources()
    since_ms = int((now - WINDOWS[-1][1]) * 1000)
    oldest: int | None = None
    complete = True
    events = UsageEvent.by_key.query(
        key.key_id,
        UsageEvent.ts >= since_ms,
        scan_index_forward=False,
        attributes_to_get=list(_FIELDS),
    )
    for read, event in enumerate(events):
        if read >= max_events:
            complete = False
            break
        ts = int(event.ts)
        oldest = ts
        age_s = now - ts / 1000
        for name, seconds in WINDOWS:
            if age_s <= seconds:
                totals[name].add(event)
        sources.add(event)

    out: dict[str, Any] = {
        "key_id": key.key_id,
        "tenant_id": key.tenant_id,
        "principal": key.principal,
        "environment": key.environment,
        "billable": key.environment == "live",
        "scopes": view["scopes"],
        "status": view["status"],
        "gate_status": _gate_status(key),
        "status_reason": key.status_reason,
        "parent_key_id": key.parent_key_id,
        "created_at": key.created_at,
        "expires_at": view["expires_at"],
        "first_use": _edge_use(key.key_id, newest=False),
        "last_use": _edge_use(key.key_id, newest=True),
        "usage": {name: t.view() for name, t in totals.items()},
        "distinct_sources_30d": len(sources.requests),
        "as_of": iso_seconds(now),
        "complete": complete,
    }
    if not complete and oldest is not None:
        out["counted_since"] = iso_seconds(oldest / 1000)
    if not summary:
        out["children"] = _children(key, now)
        out["sources"] = sources.view()["top"]
    return out
