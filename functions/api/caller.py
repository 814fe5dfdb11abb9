"""Who is calling: the authorizer's context and the request's own facts, read once.

The authorizer (functions/authorizer/handler.py) puts string values into
``requestContext.authorizer``: tenant_id, key_id, principal, parent_key_id ("" if none),
environment, scopes (comma-separated), operation, plan, month ("YYYY-MM": the tenant's
counter window), lim_tmo (tenant monthly tokens, "" = unlimited), budget (delegated key
token budget, "" = none), verdict ("allow" or a refusal code), retry_after, code, message,
type. Nothing here does I/O.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from functions.api.errors import LimitVerdict, NotAuthorized, ServiceUnavailable

USER_AGENT_MAX = 256


def _text(ctx: Mapping[str, Any], name: str) -> str:
    value = ctx.get(name)
    return "" if value is None else str(value)


def _limit(ctx: Mapping[str, Any], name: str) -> int | None:
    raw = _text(ctx, name).strip()
    if raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ServiceUnavailable(f"The authorization context is malformed ({name}).") from None
    return max(value, 0)


def authorizer_context(raw: Mapping[str, Any]) -> Mapping[str, Any] | None:
    rc = raw.get("requestContext")
    ctx = rc.get("authorizer") if isinstance(rc, Mapping) else None
    return ctx if isinstance(ctx, Mapping) else None


def verdict_refusal(raw: Mapping[str, Any]) -> LimitVerdict | None:
    """The 429 the authorizer's verdict asks for, or None when the request is allowed.

    Only the context is read: this runs before anything else (no I/O).
    """
    ctx = authorizer_context(raw)
    if ctx is None:
        return None  # Caller.from_event refuses it
    verdict = _text(ctx, "verdict")
    if verdict == "allow":
        return None
    try:
        retry_after = max(0, int(_text(ctx, "retry_after") or 0))
    except ValueError:
        retry_after = 0
    return LimitVerdict(
        _text(ctx, "message") or "Limit reached.",
        type_=_text(ctx, "type") or "rate_limit_error",
        code=_text(ctx, "code") or verdict or "rate_limit_exceeded",
        retry_after=retry_after,
    )


@dataclass(frozen=True)
class Caller:
    request_id: str
    tenant_id: str
    key_id: str
    principal: str
    parent_key_id: str | None
    environment: str
    scopes: frozenset[str]
    plan: str
    month: str
    lim_tmo: int | None
    budget: int | None
    source_ip: str
    user_agent: str
    request_time_ms: int
    started: float  # time.monotonic() when the API started on the request

    @property
    def is_test(self) -> bool:
        return self.environment != "live"

    @classmethod
    def from_event(cls, raw: Mapping[str, Any]) -> Caller:
        ctx = authorizer_context(raw)
        if ctx is None or not _text(ctx, "tenant_id") or not _text(ctx, "key_id"):
            raise NotAuthorized()
        rc = raw.get("requestContext") or {}
        identity = rc.get("identity") or {}
        headers = {str(k).lower(): v for k, v in (raw.get("headers") or {}).items()}
        user_agent = str(identity.get("userAgent") or headers.get("user-agent") or "-")
        request_id = str(rc.get("requestId") or "")
        if not request_id:
            raise NotAuthorized("The request carries no request id.")
        try:
            request_time_ms = int(rc.get("requestTimeEpoch") or time.time() * 1000)
        except (TypeError, ValueError):
            request_time_ms = int(time.time() * 1000)
        return cls(
            request_id=request_id,
            tenant_id=_text(ctx, "tenant_id"),
            key_id=_text(ctx, "key_id"),
            principal=_text(ctx, "principal") or "-",
            parent_key_id=_text(ctx, "parent_key_id") or None,
            environment=_text(ctx, "environment") or "test",  # unknown: the harmless one
            scopes=frozenset(s for s in _text(ctx, "scopes").split(",") if s),
            plan=_text(ctx, "plan"),
            month=_text(ctx, "month"),
            lim_tmo=_limit(ctx, "lim_tmo"),
            budget=_limit(ctx, "budget"),
            source_ip=str(identity.get("sourceIp") or "-"),
            user_agent=user_agent[:USER_AGENT_MAX] or "-",
            request_time_ms=request_time_ms,
            started=time.monotonic(),
        )
