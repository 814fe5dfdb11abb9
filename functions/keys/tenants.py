"""Tenants: creating one on a plan, moving it to another plan, and what the gate enforces for it
(:func:`_gate_config`, copied onto its counter shards by ``functions/gate/admin.py``)."""

from __future__ import annotations

from typing import Any

from pynamodb.exceptions import PutError, UpdateError

from functions.common.models import ACTIVE, Key, Plan, Tenant
from functions.gate import admin as gate
from functions.gate import items as gate_items
from functions.keys import rules
from functions.keys.audit import AuditMixin, default_actor
from functions.keys.base import _conditional_failed, log
from functions.keys.errors import AlreadyExists, Conflict, NotFound, quote
from functions.keys.views import iso, tenant_view


class TenantsMixin(AuditMixin):
    """Create, list, read tenants and change their plan."""

    def create_tenant(
        self, tenant_id: str, *, plan: str, actor: str | None = None
    ) -> dict[str, Any]:
        """Create a tenant on ``plan``, copying the plan's limits and scopes onto it."""
        rules.tenant_id(tenant_id)
        who = rules.actor(actor or default_actor())
        p = self._plan(plan)
        tenant = Tenant(
            tenant_id=tenant_id,
            plan=p.name,
            status=ACTIVE,
            created_at=iso(self.now()),
            lim_rpm=p.requests_per_minute,
            lim_rmo=p.requests_per_month,
            lim_tmo=p.tokens_per_month,
            lim_test_rmo=p.test_requests_per_month,
            lim_test_tmo=p.test_tokens_per_month,
            counter_shards=int(p.counter_shards or 1),
            plan_scopes=sorted(p.scopes or []),
        )
        try:
            tenant.save(condition=Tenant.tenant_id.does_not_exist())
        except PutError as exc:
            if _conditional_failed(exc):
                raise AlreadyExists(f"tenant {quote(tenant_id)} already exists") from None
            raise
        gate.configure(self.gate_table, tenant_id, _gate_config(tenant, p), self.now())
        self._audit("tenant.created", tenant_id=tenant_id, actor=who, details={"plan": p.name})
        log.info("tenant %s created on plan %s", tenant_id, p.name)
        return tenant_view(tenant, keys=0)

    def list_tenants(self) -> list[dict[str, Any]]:
        return sorted((tenant_view(t) for t in Tenant.scan()), key=lambda t: t["tenant_id"])

    def get_tenant(self, tenant_id: str) -> dict[str, Any]:
        """The tenant, with its live and test counters summed over its counter shards."""
        tenant = self._tenant(tenant_id)
        counters = {env: gate.shard_totals(self.gate_table, tenant_id, env)
                    for env in gate_items.ENVIRONMENTS}  # fmt: skip
        keys = Key.by_tenant.count(tenant_id)
        return tenant_view(tenant, counters, keys)

    def set_plan(self, tenant_id: str, plan: str, *, actor: str | None = None) -> dict[str, Any]:
        """Move a tenant to ``plan`` and copy that plan's limits and scopes onto it again.

        Keys keep their scopes; the authorizer also requires a scope to be in the tenant's
        plan, so a narrower plan takes effect on the next request.
        """
        tenant = self._tenant(tenant_id)
        who = rules.actor(actor or default_actor())
        p = self._plan(plan)
        actions: list[Any] = [
            Tenant.plan.set(p.name),
            Tenant.plan_scopes.set(sorted(p.scopes or [])),
        ]
        actions.append(
            Tenant.counter_shards.set(
                max(int(p.counter_shards or 1), int(tenant.counter_shards or 1))
            )
        )
        for attr, value in (
            (Tenant.lim_rpm, p.requests_per_minute),
            (Tenant.lim_rmo, p.requests_per_month),
            (Tenant.lim_tmo, p.tokens_per_month),
            (Tenant.lim_test_rmo, p.test_requests_per_month),
            (Tenant.lim_test_tmo, p.test_tokens_per_month),
        ):
            # An absent limit means unlimited to the authorizer: remove, never store NULL.
            actions.append(attr.remove() if value is None else attr.set(value))
        updated = Tenant(tenant_id)
        try:
            updated.update(actions=actions, condition=Tenant.tenant_id.exists())
        except UpdateError as exc:
            if _conditional_failed(exc):
                raise NotFound(f"unknown tenant {quote(tenant_id)}") from None
            raise
        try:
            gate.configure(self.gate_table, tenant_id, _gate_config(updated, p), self.now())
        except gate.ConditionFailed:
            raise Conflict(
                f"tenant {tenant_id} is too busy to re-balance its counters; run set-plan again"
            ) from None
        self._audit(
            "tenant.plan_changed",
            tenant_id=tenant_id,
            actor=who,
            details={"from": tenant.plan, "to": p.name},
        )
        log.info("tenant %s moved from plan %s to %s", tenant_id, tenant.plan, p.name)
        return tenant_view(updated)


def _gate_config(tenant: Tenant, plan: Plan) -> gate.TenantConfig:
    """What the gate enforces for ``tenant`` on ``plan`` (its counter shards' copies)."""
    return gate.TenantConfig(
        plan=plan.name,
        status=tenant.status,
        scopes=tuple(sorted(str(s) for s in plan.scopes or [])),
        rpm=None if plan.requests_per_minute is None else int(plan.requests_per_minute),
        shards=max(int(plan.counter_shards or 1), int(tenant.counter_shards or 1)),
        live=gate.EnvLimits(
            None if plan.requests_per_month is None else int(plan.requests_per_month),
            None if plan.tokens_per_month is None else int(plan.tokens_per_month),
            # test keys never count against spend: the test shards get no spend limit
            None if plan.spend_per_month_micros is None else int(plan.spend_per_month_micros),
        ),
        test=gate.EnvLimits(
            None if plan.test_requests_per_month is None else int(plan.test_requests_per_month),
            None if plan.test_tokens_per_month is None else int(plan.test_tokens_per_month),
        ),
    )
