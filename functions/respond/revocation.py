"""Revocation for responders: one key, a leaked secret's key, a tenant's keys, or a
principal's keys (within a tenant), always with the keys delegated from them.

:class:`KeyService` does the revoking (gate entries first, then the key records, then one
audit record per key; idempotent). This module adds what a responder needs around it: a
validated request (:class:`RevokeRequest`), revocation by principal, the ``tollgate.key.revoked``
event, and an exposure summary of every revoked key.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pynamodb.exceptions import DoesNotExist

from functions.common.models import Key, Tenant
from functions.common.observability import logger
from functions.keys import KeyService, rules
from functions.keys.errors import InvalidInput, NotFound, quote
from functions.respond import exposure
from functions.respond.events import KEY_REVOKED, EventNotPublished, EventPublisher

MAX_SUMMARIES: Final = 25


class RevokeRequest(BaseModel):
    """What the revoke function accepts: one target, a reason and an actor.

    Targets: ``key_id``; ``secret`` (a leaked key); ``tenant_id`` (all its keys); or
    ``principal`` with ``tenant_id`` (that principal's keys in that tenant).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    key_id: Annotated[str | None, Field(max_length=64)] = None
    secret: Annotated[SecretStr | None, Field(max_length=256)] = None
    tenant_id: Annotated[str | None, Field(max_length=64)] = None
    principal: Annotated[str | None, Field(max_length=128)] = None
    reason: Annotated[str, Field(min_length=1, max_length=rules.MAX_REASON)]
    actor: Annotated[str, Field(min_length=1, max_length=rules.MAX_ACTOR)]
    include_exposure: bool = True

    @model_validator(mode="after")
    def _one_target(self) -> RevokeRequest:
        if self.principal is not None:
            if self.tenant_id is None:
                raise ValueError("principal needs tenant_id (a principal is named per tenant)")
            if self.key_id is not None or self.secret is not None:
                raise ValueError("give exactly one of key_id, secret, tenant_id or principal")
            return self
        if sum(x is not None for x in (self.key_id, self.secret, self.tenant_id)) != 1:
            raise ValueError("give exactly one of key_id, secret, tenant_id or principal")
        return self

    @property
    def via(self) -> str:
        if self.principal is not None:
            return "principal"
        if self.key_id is not None:
            return "key"
        return "secret" if self.secret is not None else "tenant"


def describe(error: ValidationError) -> str:
    """A one-line message for a validation error that never echoes the input."""
    parts = []
    for item in error.errors(include_input=False, include_url=False)[:3]:
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "__root__")
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts) or "invalid request"


def _principal_roots(tenant_id: str, principal: str) -> list[str]:
    """The keys of ``principal`` in ``tenant_id`` that are not delegated from another of them."""
    rules.tenant_id(tenant_id)
    rules.principal(principal)
    try:
        Tenant.get(tenant_id, consistent_read=True, attributes_to_get=["tenant_id"])
    except DoesNotExist:
        raise NotFound(f"unknown tenant {quote(tenant_id)}") from None
    keys = [k for k in Key.by_tenant.query(tenant_id) if k.principal == principal]
    if not keys:
        raise NotFound(f"tenant {quote(tenant_id)} has no key of principal {quote(principal)}")
    mine = {k.key_id for k in keys}
    return sorted(k.key_id for k in keys if k.parent_key_id not in mine)


def revoke(
    request: RevokeRequest,
    *,
    service: KeyService | None = None,
    publisher: EventPublisher | None = None,
    report: Callable[..., dict[str, Any]] = exposure.report,
) -> dict[str, Any]:
    """Revoke what ``request`` names. Returns ``revoked`` (key ids, delegated keys included),
    ``via``, and ``exposure`` (a summary per revoked key, at most :data:`MAX_SUMMARIES`).

    Idempotent: revoking again revokes nothing new, returns the same ids and writes one more
    audit record per key (marked ``already_revoked``).
    """
    svc = service or KeyService()
    common = {"reason": request.reason, "actor": request.actor}
    revoked: list[str] = []
    if request.principal is not None:
        assert request.tenant_id is not None
        for root in _principal_roots(request.tenant_id, request.principal):
            for kid in svc.revoke(key_id=root, **common)["revoked"]:
                if kid not in revoked:
                    revoked.append(kid)
    else:
        secret = request.secret.get_secret_value() if request.secret is not None else None
        revoked = list(
            svc.revoke(key_id=request.key_id, secret=secret, tenant_id=request.tenant_id, **common)[
                "revoked"
            ]
        )

    result: dict[str, Any] = {"revoked": revoked, "via": request.via}
    tenants = sorted({k.tenant_id for k in _keys(revoked[:1])}) or (
        [request.tenant_id] if request.tenant_id else []
    )
    detail = {
        "revoked": revoked,
        "via": request.via,
        "tenant_id": tenants[0] if tenants else None,
        "principal": request.principal,
        "reason": rules.reason(request.reason),
        "actor": rules.actor(request.actor),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        sent = (publisher or EventPublisher.from_env()).publish(KEY_REVOKED, detail)
        result["event_published"] = sent
    except EventNotPublished as exc:  # the revocation stands; the alert is best effort
        logger.error("revocation event not published", extra={"error": str(exc)})
        result["event_published"] = False
    if request.include_exposure:
        result["exposure"] = [report(key_id=kid, summary=True) for kid in revoked[:MAX_SUMMARIES]]
        result["exposure_truncated"] = len(revoked) > MAX_SUMMARIES
    return result


def _keys(key_ids: list[str]) -> list[Key]:
    if not key_ids:
        return []
    return list(Key.batch_get(key_ids))


__all__ = ["InvalidInput", "RevokeRequest", "describe", "revoke"]
