"""Seed plans, tenants and keys straight into the tables (no service layer), for tests of
the authorizer and the gateway."""

from __future__ import annotations

import time
from typing import Any

from functions.common import gate, keyformat
from functions.common.models import Key, Plan, Secret, Tenant
from functions.common.routes import SCOPES


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
    t = Tenant(tenant_id=tenant_id, **{**fields, **over})
    t.save()
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
    entry = gate.new_entry(parent_key_id=parent, token_budget=budget)
    Tenant(tenant_id).update(actions=[Tenant.gate[key_id].set(entry)])  # type: ignore[index]
    return key_id, secret


def set_entry(tenant_id: str, key_id: str, **fields: Any) -> None:
    t = Tenant.get(tenant_id)
    t.gate[key_id].update(fields)
    t.save()


def now() -> float:
    return time.time()
