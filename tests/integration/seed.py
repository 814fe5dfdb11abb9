"""Seed plans, tenants and keys straight into the tables (no service layer), for tests of
the authorizer and the gateway."""

from __future__ import annotations

import time
from typing import Any

from functions.common import keyformat
from functions.common.models import Key, Plan, Secret, Tenant
from functions.common.routes import SCOPES
from tests import gate_support


def plan(name: str = "starter", **limits: Any) -> Plan:
    p = Plan(name=name, created_at="2026-01-01T00:00:00Z", scopes=sorted(SCOPES),
             models=["tollgate-echo"], **limits)  # fmt: skip
    p.save()
    return p


def tenant(tenant_id: str = "acme", p: Plan | None = None, **over: Any) -> Tenant:
    p = p or plan()
    fields: dict[str, Any] = dict(
        plan=p.name,
        created_at="2026-01-01T00:00:00Z",
        lim_rpm=p.requests_per_minute,
        lim_rmo=p.requests_per_month,
        lim_tmo=p.tokens_per_month,
        plan_scopes=list(p.scopes),
    )
    used = {k: over.pop(k) for k in ("mtok", "mreq") if k in over}
    t = Tenant(tenant_id=tenant_id, **{**fields, **over})
    t.save()
    scopes = over.get("plan_scopes")
    gate_support.configure(t, p if scopes is None else Plan(**{**p.attribute_values,
                                                              "scopes": list(scopes)}))  # fmt: skip
    if used:
        gate_support.set_shard(tenant_id, **{"tk": used.get("mtok", 0), "rq": used.get("mreq", 0)})
    return t


def key(
    tenant_id: str = "acme",
    env: str = "live",
    scopes: list[str] | None = None,
    *,
    parent: str | None = None,
    budget: int | None = None,
    expires_at: int | None = None,
    principal: str = "svc",
) -> tuple[str, str]:
    """Create a key; returns (key_id, secret)."""
    secret = keyformat.generate(env)
    key_id = keyformat.new_key_id()
    scopes = sorted(SCOPES) if scopes is None else scopes
    common: dict[str, Any] = dict(
        tenant_id=tenant_id,
        environment=env,
        principal=principal,
        scopes=scopes,
        parent_key_id=parent,
        expires_at=expires_at,
        created_at="2026-01-01T00:00:00Z",
    )
    Secret(secret_hash=keyformat.hash_secret(secret), key_id=key_id, serial=1, **common).save()
    Key(key_id=key_id, token_budget=budget, **common).save()
    gate_support.new_key(tenant_id, key_id, parent, budget)
    return key_id, secret


def set_entry(tenant_id: str, key_id: str, **fields: Any) -> None:
    """Change fields of a key's gate item (``functions/gate/items.py`` names)."""
    gate_support.set_key(tenant_id, key_id, **fields)


def suspend_with_children(tenant_id: str, key_id: str, status: str) -> None:
    """Set a root key's status and cascade it to its children, as KeyService does."""
    from functions.gate import admin

    gate_support.set_key(tenant_id, key_id, s=status)
    admin.cascade(gate_support.table(), key_id, status, time.time())


def set_tenant_status(tenant_id: str, status: str) -> None:
    gate_support.set_shard(tenant_id, st=status)


def now() -> float:
    return time.time()
