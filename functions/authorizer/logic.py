"""What the authorizer decides, without Lambda and without I/O.

``extract_key`` reads the key from the headers; ``check_facts`` applies what the immutable
facts of a secret decide (expiry, environment, scope); ``diagnose`` explains from the
tenant item why the gate's conditional update failed: a refusal, or counter windows that
rolled over (the update is then retried with the rollover written in).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from functions.common import gate
from functions.common.keyformat import ParsedKey, parse
from functions.common.routes import Route

Kind = Literal["allow", "unauthorized", "deny", "limit"]


@dataclass(frozen=True)
class Decision:
    kind: Kind
    code: str = ""
    message: str = ""
    type: str = ""
    retry_after: int = 0

    @property
    def admitted(self) -> bool:
        return self.kind == "allow"


ALLOW: Final = Decision("allow", "ok")


def _unauthorized(code: str, message: str) -> Decision:
    return Decision("unauthorized", code, message, "invalid_request_error")


def _deny(code: str, message: str) -> Decision:
    return Decision("deny", code, message, "permission_error")


MISSING_KEY: Final = _unauthorized("missing_api_key", "No API key was sent.")
MALFORMED_KEY: Final = _unauthorized("invalid_api_key", "The API key is malformed.")
UNKNOWN_KEY: Final = _unauthorized("invalid_api_key", "The API key is not known.")
ROTATED_OUT: Final = _unauthorized(
    "invalid_api_key", "The API key was rotated and its grace period is over."
)
UNKNOWN_ROUTE: Final = _deny("unknown_route", "This route does not exist.")
KEY_EXPIRED: Final = _deny("key_expired", "The API key has expired.")
KEY_REVOKED: Final = _deny("key_revoked", "The API key has been revoked.")
KEY_SUSPENDED: Final = _deny("key_suspended", "The API key is suspended.")
PARENT_INACTIVE: Final = _deny(
    "parent_key_inactive", "The key this key was delegated from is no longer active."
)
TENANT_INACTIVE: Final = _deny("tenant_inactive", "The tenant of this API key is not active.")


def wrong_environment(env: str, route: Route) -> Decision:
    allowed = " or ".join(sorted(route.environments))
    return _deny(
        "wrong_environment", f"A {env} key cannot call {route.operation}; it needs a {allowed} key."
    )


def missing_scope(scope: str) -> Decision:
    return _deny("insufficient_scope", f"The API key lacks the scope {scope}.")


def scope_not_in_plan(scope: str) -> Decision:
    return _deny("scope_not_in_plan", f"The tenant's plan does not include the scope {scope}.")


def rate_limited(retry_after: int) -> Decision:
    return Decision(
        "limit",
        "rate_limit_exceeded",
        "Requests per minute limit reached for this key.",
        "requests",
        retry_after,
    )


def quota_exceeded(retry_after: int) -> Decision:
    return Decision(
        "limit",
        "quota_exceeded",
        "Monthly request quota of the tenant's plan is used up.",
        "insufficient_quota",
        retry_after,
    )


def tokens_exhausted(retry_after: int, *, key_budget: bool = False) -> Decision:
    whose = "this delegated key's token budget" if key_budget else "the tenant's monthly tokens"
    return Decision(
        "limit",
        "insufficient_quota",
        f"No tokens left in {whose}.",
        "insufficient_quota",
        retry_after,
    )


@dataclass(frozen=True)
class Facts:
    """The immutable facts of a secret (its ``Secret`` item): safe to cache."""

    key_id: str
    tenant_id: str
    environment: str
    principal: str
    scopes: frozenset[str]
    parent_key_id: str | None
    expires_at: int | None
    serial: int

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Facts:
        return cls(
            key_id=item["key_id"],
            tenant_id=item["tenant_id"],
            environment=item["environment"],
            principal=item["principal"],
            scopes=frozenset(item.get("scopes") or ()),
            parent_key_id=item.get("parent_key_id") or None,
            expires_at=int(item["expires_at"]) if item.get("expires_at") is not None else None,
            serial=int(item["serial"]),
        )


def _header(headers: Mapping[str, Any] | None, name: str) -> list[str]:
    if not headers:
        return []
    found: list[str] = []
    for k, v in headers.items():
        if isinstance(k, str) and k.lower() == name:
            if isinstance(v, list):
                found.extend(x for x in v if isinstance(x, str))
            elif isinstance(v, str):
                found.append(v)
    return found


def extract_key(
    headers: Mapping[str, Any] | None, multi_value_headers: Mapping[str, Any] | None = None
) -> ParsedKey | Decision:
    """The key from ``Authorization: Bearer`` or ``x-api-key``; a Decision if there is none.

    A header sent twice, or two different keys in the two headers, is refused as malformed:
    which one a proxy would pick is ambiguous.
    """
    auth = _header(multi_value_headers, "authorization") or _header(headers, "authorization")
    api_key = _header(multi_value_headers, "x-api-key") or _header(headers, "x-api-key")
    if len(auth) > 1 or len(api_key) > 1:
        return MALFORMED_KEY
    candidates = []
    if auth:
        scheme, _, value = auth[0].strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return MALFORMED_KEY
        candidates.append(value.strip())
    if api_key:
        candidates.append(api_key[0].strip())
    if not candidates:
        return MISSING_KEY
    if len(set(candidates)) > 1:
        return MALFORMED_KEY
    parsed = parse(candidates[0])
    return parsed if parsed is not None else MALFORMED_KEY


def check_facts(facts: Facts, parsed: ParsedKey, route: Route, now: float) -> Decision | None:
    """Refusals the immutable facts decide on their own (no I/O); None to go on."""
    if facts.environment != parsed.environment:  # cannot happen unless data is corrupt
        return UNKNOWN_KEY
    if facts.expires_at is not None and now >= facts.expires_at:
        return KEY_EXPIRED
    if facts.environment not in route.environments:
        return wrong_environment(facts.environment, route)
    if route.scope is not None and route.scope not in facts.scopes:
        return missing_scope(route.scope)
    return None


@dataclass(frozen=True)
class Windows:
    """Which counter windows the next update attempt should roll over, and which windows it
    counts in (None: the request's own). Windows only ever move forward: a request that
    arrives after a newer window opened is counted in that newer window."""

    minute_stale: bool
    month_stale: bool
    minute: int | None = None
    month: str | None = None


def _num(value: Any) -> int | None:
    return None if value is None else int(value)


def diagnose(
    old: Mapping[str, Any] | None, facts: Facts, route: Route, now: float
) -> Decision | Windows:
    """Why the gate update failed, from the tenant item as it was (``ALL_OLD``)."""
    if not old or old.get("status") != "active":
        return TENANT_INACTIVE
    entries = old.get("gate") or {}
    entry = entries.get(facts.key_id)
    if not entry or entry.get(gate.STATUS) == "revoked":
        return KEY_REVOKED
    if entry.get(gate.STATUS) != "active":
        return KEY_SUSPENDED
    serial = int(entry.get(gate.SERIAL, 0))
    in_grace = facts.serial == serial - 1 and float(entry.get(gate.GRACE, 0)) > now
    if facts.serial != serial and not in_grace:
        return ROTATED_OUT
    if facts.parent_key_id:
        parent = entries.get(facts.parent_key_id)
        if not parent or parent.get(gate.STATUS) != "active":
            return PARENT_INACTIVE
    if route.scope is not None and route.scope not in (old.get("plan_scopes") or ()):
        return scope_not_in_plan(route.scope)

    minute, month = gate.minute_window(now), gate.month_window(now)
    stored_minute, stored_month = int(entry.get(gate.WINDOW, 0)), old.get("mo")
    minute_stale = stored_minute < minute
    month_stale = stored_month is None or str(stored_month) < month
    minute, month = max(minute, stored_minute), month if month_stale else str(stored_month)
    to_month_end = gate.seconds_to_next_month(now)

    budget = _num(entry.get(gate.BUDGET))
    if budget is not None and int(entry.get(gate.USED, 0)) >= budget:
        return tokens_exhausted(0, key_budget=True)
    lim_tmo = _num(old.get("lim_tmo"))
    if lim_tmo is not None and (0 if month_stale else int(old.get("mtok", 0))) >= lim_tmo:
        return tokens_exhausted(to_month_end)
    lim_rpm = _num(old.get("lim_rpm"))
    if lim_rpm is not None and (0 if minute_stale else int(entry.get(gate.COUNT, 0))) >= lim_rpm:
        return rate_limited(gate.seconds_to_next_minute(now))
    lim_rmo = _num(old.get("lim_rmo"))
    if lim_rmo is not None and (0 if month_stale else int(old.get("mreq", 0))) >= lim_rmo:
        return quota_exceeded(to_month_end)
    return Windows(minute_stale, month_stale, minute, month)
