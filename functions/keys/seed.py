"""Seeding: a plan, a tenant and one key per environment, for the local stack and demos."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from functions.keys.errors import AlreadyExists
from functions.keys.lifecycle import LifecycleMixin
from functions.keys.plans import PlansMixin
from functions.keys.tenants import TenantsMixin


class SeedMixin(PlansMixin, TenantsMixin, LifecycleMixin):
    """Make sure a plan and tenant exist, then issue keys."""

    def seed(
        self,
        *,
        tenant_id: str = "demo",
        plan: str = "starter",
        environments: Sequence[str] = ("live", "test"),
        principal: str = "default",
        plan_options: Mapping[str, Any] | None = None,
        actor: str = "local:seed",
    ) -> list[dict[str, Any]]:
        """Make sure ``plan`` and ``tenant_id`` exist (created with ``plan_options`` if not),
        then issue one new key per environment. Returns the issued keys (with secrets)."""
        with contextlib.suppress(AlreadyExists):
            self.create_plan(plan, actor=actor, **dict(plan_options or {}))
        with contextlib.suppress(AlreadyExists):
            self.create_tenant(tenant_id, plan=plan, actor=actor)
        return [
            self.create_key(tenant_id, environment=env, principal=principal, actor=actor)
            for env in environments
        ]
