"""Issuing keys: create, delegate (one level deep), rotate, list and read. A new key is written
``Secret``, ``Key``, then its gate item, so a half-created key is never usable."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any, Final

from pynamodb.exceptions import PutError, UpdateError
from pynamodb.expressions.condition import Condition

from functions.common import keyformat
from functions.common.models import ACTIVE, Key, Secret, Tenant
from functions.gate import admin as gate
from functions.gate import items as gate_items
from functions.gate import sources
from functions.keys import rules
from functions.keys.audit import AuditMixin, default_actor
from functions.keys.base import _conditional_failed, log
from functions.keys.durations import parse_duration
from functions.keys.errors import Conflict, InvalidInput, quote
from functions.keys.views import iso, iso_seconds, key_tags, key_view
from functions.pricing.money import usd

OLD_SECRET_RETENTION: Final = 30 * 86_400  # a rotated-out Secret item lives this long past grace
DEFAULT_GRACE: Final = "1h"


class LifecycleMixin(AuditMixin):
    """Issue, delegate, rotate, list and read keys; the Secret items behind them."""

    def create_key(
        self,
        tenant_id: str,
        *,
        environment: str = "live",
        principal: str = "default",
        scopes: Iterable[str] | None = None,
        expires_in: int | str | None = None,
        actor: str | None = None,
        allow_cidrs: list[str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Issue a key for an active tenant. Returns its view plus ``secret`` (shown once).

        ``scopes`` default to the tenant's plan scopes and must be a subset of them;
        ``expires_in`` is seconds or a duration such as ``30d`` (None: never expires);
        ``allow_cidrs``: the only networks the key may be used from (None: anywhere; at most
        16, strict CIDRs); ``tags``: ``{k: v}`` fixed for the key's life (at most 8).
        """
        rules.tenant_id(tenant_id)
        rules.environment(environment)
        rules.principal(principal)
        cidrs = rules.allow_cidrs(allow_cidrs)
        chosen_tags = rules.tags(tags)
        who = rules.actor(actor or default_actor())
        lifetime = self._lifetime(expires_in)
        tenant = self._tenant(tenant_id)
        self._require_active_tenant(tenant)
        plan_scopes = [str(s) for s in tenant.plan_scopes or []]
        chosen = rules.scopes(plan_scopes if scopes is None else scopes, allowed=plan_scopes)
        now = self.now()
        return self._issue(
            tenant_id=tenant_id,
            environment=environment,
            principal=principal,
            scopes=chosen,
            expires_at=None if lifetime is None else int(now) + lifetime,
            parent_key_id=None,
            token_budget=None,
            actor=who,
            allow_cidrs=cidrs,
            tags=chosen_tags,
        )

    def delegate_key(
        self,
        parent_key_id: str,
        *,
        principal: str,
        scopes: Iterable[str] | None = None,
        token_budget: int | None = None,
        expires_in: int | str | None = None,
        actor: str | None = None,
        allow_cidrs: list[str] | None = None,
        tags: dict[str, str] | None = None,
        spend_budget_micros: int | None = None,
    ) -> dict[str, Any]:
        """Issue a child key (e.g. for an agent) under an active, non-delegated parent.

        Same tenant and environment; scopes a subset of the parent's (default: the parent's
        that the tenant's plan still allows);
        an optional token budget and spend budget (``spend_budget_micros``, integer
        micro-dollars; docs/billing.md, "Spend budgets"); an expiry never later than the
        parent's (a later request is clamped, reported as ``expiry_clamped``). One level
        only: a delegated key cannot delegate, which keeps revocation cascades and budgets
        simple to reason about.

        ``allow_cidrs``: if the parent has a list, each network must lie within one of the
        parent's (default: the parent's list). ``tags``: the parent's tags, with these added
        or overriding the parent's value of the same key (default: the parent's).
        """
        rules.key_id(parent_key_id)
        rules.principal(principal)
        cidrs = rules.allow_cidrs(allow_cidrs)
        given_tags = rules.tags(tags)
        budget = rules.token_budget(token_budget)
        spend_budget = rules.spend_budget_micros(spend_budget_micros)
        who = rules.actor(actor or default_actor())
        lifetime = self._lifetime(expires_in)
        parent = self._key(parent_key_id)
        now = self.now()
        if parent.parent_key_id:
            raise InvalidInput(
                f"key {parent.key_id} is itself delegated; delegation is one level deep"
            )
        tenant = self._tenant(parent.tenant_id)
        self._require_active_tenant(tenant)
        entry = self._entry(parent)
        status = self._status(parent, entry, now)
        if status != ACTIVE:
            raise Conflict(f"key {parent.key_id} is {status}; only an active key can delegate")
        parent_scopes = sorted(str(s) for s in parent.scopes or [])
        plan_scopes = {str(s) for s in tenant.plan_scopes or []}
        if scopes is None:  # default: what the parent may still do under the current plan
            scopes = [s for s in parent_scopes if s in plan_scopes]
        try:
            chosen = rules.scopes(scopes, allowed=parent_scopes)
        except InvalidInput as exc:
            raise InvalidInput(f"delegation cannot widen the parent's scopes: {exc}") from None
        if not set(chosen) <= plan_scopes:
            outside = sorted(set(chosen) - plan_scopes)[0]
            raise InvalidInput(f"scope {quote(outside)} is no longer in the tenant's plan")
        cidrs, chosen_tags = self._inherit(parent, cidrs, given_tags)
        expires_at = parent.expires_at
        clamped = False
        if lifetime is not None:
            wanted = int(now) + lifetime
            if expires_at is not None and wanted > expires_at:
                clamped = True
            else:
                expires_at = wanted
        issued = self._issue(
            tenant_id=parent.tenant_id,
            environment=parent.environment,
            principal=principal,
            scopes=chosen,
            expires_at=None if expires_at is None else int(expires_at),
            parent_key_id=parent.key_id,
            token_budget=budget,
            actor=who,
            allow_cidrs=cidrs,
            tags=chosen_tags,
            spend_budget_micros=spend_budget,
        )
        issued["expiry_clamped"] = clamped
        return issued

    def list_keys(self, tenant_id: str) -> list[dict[str, Any]]:
        """The keys of a tenant (oldest first). Never a secret or a hash."""
        tenant = self._tenant(tenant_id)
        now = self.now()
        keys = {k.key_id: k for k in Key.by_tenant.query(tenant.tenant_id)}
        ordered = sorted(keys.values(), key=lambda k: (k.created_at, k.key_id))
        return [key_view(k, now) for k in ordered]

    def get_key(self, key_id: str) -> dict[str, Any]:
        """The key; a delegated key with budgets also shows what it used of them (read from
        its gate item, where they are enforced)."""
        key = self._key(key_id)
        view = key_view(key, self.now())
        if key.token_budget is not None or key.spend_budget_micros is not None:
            entry = gate.get_key_item(self.gate_table, key.key_id, key.parent_key_id) or {}
            if key.token_budget is not None:
                view["tokens_used"] = int(entry.get(gate_items.USED) or 0)
            if key.spend_budget_micros is not None:
                spent = int(entry.get(gate_items.SPENT) or 0)
                view["spend_spent"] = usd(spent)
                view["spend_spent_micros"] = spent
        return view

    def rotate_key(
        self, key_id: str, *, grace: int | str = DEFAULT_GRACE, actor: str | None = None
    ) -> dict[str, Any]:
        """Issue a new secret (serial n+1); the old one (serial n) stays valid for ``grace``.

        Only an active, unexpired key rotates. Returns the key view plus ``secret`` (shown
        once), ``serial`` and ``grace_until``.
        """
        rules.key_id(key_id)
        grace_s = grace if isinstance(grace, int) else parse_duration(grace, allow_zero=True)
        if grace_s < 0:
            raise InvalidInput("grace must not be negative")
        who = rules.actor(actor or default_actor())
        key = self._key(key_id)
        entry = self._entry(key)
        now = self.now()
        status = self._status(key, entry, now)
        if status != ACTIVE:
            raise Conflict(f"key {key_id} is {status}; only an active key can rotate")
        serial = int(entry[gate_items.SERIAL])
        new_serial = serial + 1
        grace_until = int(now) + grace_s if grace_s > 0 else 0
        secret = keyformat.generate(key.environment)
        new_secret = self._secret_item(key, secret, new_serial, now)
        self._put_new(new_secret, Secret.secret_hash.does_not_exist())
        if not gate.rotate(self.gate_table, key_id, key.parent_key_id, serial, grace_until):
            new_secret.delete()
            raise Conflict(f"key {key_id} changed while rotating; try again")
        key.update(actions=[Key.secret_serial.set(new_serial), Key.rotated_at.set(iso(now))])
        self._expire_old_secrets(
            key_id, below=new_serial, ttl=int(now) + grace_s + OLD_SECRET_RETENTION
        )
        self._audit(
            "key.rotated",
            tenant_id=key.tenant_id,
            key_id=key_id,
            actor=who,
            details={
                "serial": new_serial,
                "grace_seconds": grace_s,
                "grace_until": iso_seconds(grace_until) if grace_until else None,
            },
        )
        log.info("key %s rotated to serial %d (grace %ds)", key_id, new_serial, grace_s)
        view = key_view(key, now)
        view.update(
            secret=secret,
            serial=new_serial,
            grace_until=iso_seconds(grace_until) if grace_until else None,
        )
        return view

    @staticmethod
    def _inherit(
        parent: Key, cidrs: list[str] | None, given_tags: dict[str, str]
    ) -> tuple[list[str] | None, dict[str, str]]:
        """A delegated key's networks and tags from its parent's (see :meth:`delegate_key`)."""
        parent_cidrs = [str(c) for c in parent.allow_cidrs or []]
        if cidrs is None:
            cidrs = parent_cidrs or None
        elif parent_cidrs:
            outside = sources.within(cidrs, parent_cidrs)
            if outside is not None:
                raise InvalidInput(
                    f"CIDR {quote(outside)} is not within the parent key's networks "
                    f"({', '.join(parent_cidrs)}): delegation cannot widen them"
                )
        merged = {str(k): str(v) for k, v in key_tags(parent).items()}
        merged.update(given_tags)
        return cidrs, rules.tags(merged)

    def _lifetime(self, expires_in: int | str | None) -> int | None:
        if expires_in is None:
            return None
        if isinstance(expires_in, bool):
            raise InvalidInput("expires-in must be a duration such as 30d")
        if isinstance(expires_in, int):
            if expires_in <= 0:
                raise InvalidInput("expires-in must be more than zero")
            return expires_in
        return parse_duration(expires_in)

    @staticmethod
    def _require_active_tenant(tenant: Tenant) -> None:
        if tenant.status != ACTIVE:
            raise Conflict(f"tenant {tenant.tenant_id} is {tenant.status}, not active")

    @staticmethod
    def _put_new(item: Key | Secret, condition: Condition) -> None:
        try:
            item.save(condition=condition)
        except PutError as exc:
            if _conditional_failed(exc):
                raise Conflict("an identifier collided; try again") from None
            raise

    @staticmethod
    def _secret_item(key: Key, secret: str, serial: int, now: float) -> Secret:
        return Secret(
            secret_hash=keyformat.hash_secret(secret),
            key_id=key.key_id,
            tenant_id=key.tenant_id,
            environment=key.environment,
            principal=key.principal,
            scopes=list(key.scopes or []),
            parent_key_id=key.parent_key_id,
            expires_at=key.expires_at,
            serial=serial,
            created_at=iso(now),
            tags=key_tags(key) or None,
        )

    def _issue(
        self,
        *,
        tenant_id: str,
        environment: str,
        principal: str,
        scopes: list[str],
        expires_at: int | None,
        parent_key_id: str | None,
        token_budget: int | None,
        actor: str,
        allow_cidrs: list[str] | None = None,
        tags: dict[str, str] | None = None,
        spend_budget_micros: int | None = None,
    ) -> dict[str, Any]:
        """Write Secret, Key, then the gate entry that makes the key usable; audit."""
        now = self.now()
        key = Key(
            key_id=keyformat.new_key_id(),
            tenant_id=tenant_id,
            environment=environment,
            principal=principal,
            scopes=scopes,
            status=ACTIVE,
            parent_key_id=parent_key_id,
            token_budget=token_budget,
            spend_budget_micros=spend_budget_micros,
            created_at=iso(now),
            expires_at=expires_at,
            secret_serial=1,
            allow_cidrs=allow_cidrs or None,
            tags=dict(tags) if tags else None,
        )
        secret = keyformat.generate(environment)
        secret_item = self._secret_item(key, secret, 1, now)
        self._put_new(secret_item, Secret.secret_hash.does_not_exist())
        try:
            self._put_new(key, Key.key_id.does_not_exist())
        except Exception:
            secret_item.delete()
            raise
        try:
            gate.new_key_item(
                self.gate_table,
                tenant_id=tenant_id,
                key_id=key.key_id,
                parent_key_id=parent_key_id,
                token_budget=token_budget,
                expires_at=expires_at,
                allow_cidrs=allow_cidrs,
                spend_budget_micros=spend_budget_micros,
            )
        except gate.ConditionFailed:
            # Undo: without a gate item the key was never usable, but leave no debris.
            secret_item.delete()
            key.delete()
            raise Conflict("an identifier collided; try again") from None
        action = "key.delegated" if parent_key_id else "key.created"
        details: dict[str, Any] = {
            "environment": environment,
            "principal": principal,
            "scopes": scopes,
            "expires_at": iso_seconds(expires_at),
        }
        if allow_cidrs:
            details["allow_cidrs"] = list(allow_cidrs)
        if tags:
            details["tags"] = dict(tags)
        if parent_key_id:
            details.update(parent_key_id=parent_key_id, token_budget=token_budget)
            if spend_budget_micros is not None:
                details["spend_budget"] = usd(spend_budget_micros)
        self._audit(action, tenant_id=tenant_id, key_id=key.key_id, actor=actor, details=details)
        log.info("key %s issued for tenant %s (%s)", key.key_id, tenant_id, environment)
        view = key_view(key, now)
        view["secret"] = secret
        return view

    @staticmethod
    def _expire_old_secrets(key_id: str, *, below: int, ttl: int) -> None:
        """Set ``ttl`` on the key's older Secret items (found through the ``by_key`` index).

        Only housekeeping: validity is decided by the gate entry, never by this.
        """
        for old in Secret.by_key.query(key_id, Secret.serial < below):
            with contextlib.suppress(UpdateError):  # already has a ttl
                Secret(old.secret_hash).update(
                    actions=[Secret.ttl.set(ttl)],
                    condition=Secret.secret_hash.exists() & Secret.ttl.does_not_exist(),
                )
