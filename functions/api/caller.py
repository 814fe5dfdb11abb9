"""Who is calling: the authorizer's context and the request's own facts, read once.

The authorizer writes ``requestContext.authorizer`` through the one typed contract
(``functions/gate/contract.py`` ``GateContext``), and this module reads it back through the
same class. Nothing here does I/O.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from functions.api.errors import LimitVerdict, NotAuthorized, ServiceUnavailable
from functions.gate.contract import GateContext, MalformedContext

USER_AGENT_MAX = 256


def _gate_context(ctx: Mapping[str, Any]) -> GateContext:
    try:
        return GateContext.from_context(ctx)
    except MalformedContext as exc:
        raise ServiceUnavailable(str(exc)) from None


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
    try:
        gate = GateContext.from_context(ctx)
    except MalformedContext:
        gate = GateContext(verdict=str(ctx.get("verdict") or ""))
    if gate.verdict == "allow":
        return None
    return LimitVerdict(
        gate.message or "Limit reached.",
        type_=gate.type or "rate_limit_error",
        code=gate.code or gate.verdict or "rate_limit_exceeded",
        retry_after=max(0, gate.retry_after),
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
    lim_tmo: int | None  # the admitting shard's token allocation (None: unlimited)
    budget: int | None
    source_ip: str
    user_agent: str
    request_time_ms: int
    started: float  # time.monotonic() when the API started on the request

    shard: int = 0
    # keyattrs: the key's tags (``{k: v}``, fixed for the key's life), into every usage event
    tags: Mapping[str, str] = field(default_factory=dict)
    spend_alloc: int | None = None  # the admitting shard's spend allocation (None: unlimited)
    spend_budget: int | None = None  # a delegated key's spend budget (micro-dollars)

    @property
    def is_test(self) -> bool:
        return self.environment != "live"

    def window(self) -> Any:
        """The token limits the authorizer saw, for :mod:`functions.api.budget`."""
        from functions.api.budget import Window

        return Window(self.month, self.lim_tmo, self.budget, self.environment, self.shard,
                      self.parent_key_id, self.spend_alloc, self.spend_budget)  # fmt: skip

    @classmethod
    def from_event(cls, raw: Mapping[str, Any]) -> Caller:
        raw_ctx = authorizer_context(raw)
        if raw_ctx is None:
            raise NotAuthorized()
        ctx = _gate_context(raw_ctx)
        if not ctx.tenant_id or not ctx.key_id:
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
            tenant_id=ctx.tenant_id,
            key_id=ctx.key_id,
            principal=ctx.principal or "-",
            parent_key_id=ctx.parent_key_id or None,
            environment=ctx.environment or "test",  # unknown: the harmless one
            scopes=ctx.scope_set,
            plan=ctx.plan,
            month=ctx.month,
            lim_tmo=ctx.token_limit,
            budget=ctx.key_budget,
            shard=ctx.shard,
            spend_alloc=ctx.spend_limit,
            spend_budget=ctx.key_spend_budget,
            source_ip=str(identity.get("sourceIp") or "-"),
            user_agent=user_agent[:USER_AGENT_MAX] or "-",
            request_time_ms=request_time_ms,
            started=time.monotonic(),
            tags=_tag_map(ctx),
        )


def _tag_map(ctx: GateContext) -> dict[str, str]:
    try:
        return ctx.tag_map
    except MalformedContext as exc:
        raise ServiceUnavailable(str(exc)) from None
