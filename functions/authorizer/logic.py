"""What the authorizer decides on its own, without Lambda and without I/O.

``extract_key`` reads the key from the headers; ``check_facts`` applies what the immutable
facts of a secret decide (expiry, environment, scope). Everything that changes (statuses,
counters, limits) is decided by the gate's conditional writes (``functions/gate/``); the
decisions themselves are typed in ``functions/gate/decisions.py`` and re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.common.keyformat import ParsedKey, parse
from functions.common.routes import Route
from functions.gate.admission import Facts
from functions.gate.decisions import (
    ALLOW,
    KEY_EXPIRED,
    KEY_REVOKED,
    KEY_SUSPENDED,
    MALFORMED_KEY,
    MISSING_KEY,
    PARENT_INACTIVE,
    ROTATED_OUT,
    TENANT_INACTIVE,
    UNKNOWN_KEY,
    UNKNOWN_ROUTE,
    Decision,
    missing_scope,
    quota_exceeded,
    rate_limited,
    scope_not_in_plan,
    tokens_exhausted,
    wrong_environment,
)

__all__ = [
    "ALLOW", "KEY_EXPIRED", "KEY_REVOKED", "KEY_SUSPENDED", "MALFORMED_KEY", "MISSING_KEY",
    "PARENT_INACTIVE", "ROTATED_OUT", "TENANT_INACTIVE", "UNKNOWN_KEY", "UNKNOWN_ROUTE",
    "Decision", "Facts", "check_facts", "extract_key", "missing_scope", "quota_exceeded",
    "rate_limited", "scope_not_in_plan", "tokens_exhausted", "wrong_environment",
]  # fmt: skip


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
