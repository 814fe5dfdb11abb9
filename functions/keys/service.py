"""The key lifecycle: plans, tenants, keys (create, delegate, rotate, revoke, suspend,
reinstate) and the audit trail. Used by the CLI, the local stack and the responder functions.

How every key operation writes (enforcement first):

1. the key's **gate item** (``functions/gate/``) changes in one conditional ``UpdateItem``:
   that is what the authorizer enforces, atomically, on the very next request (a parent's
   suspension, reinstatement or revocation then reaches each of its children's items);
2. the durable ``Key`` record is brought in line;
3. one append-only ``AuditRecord`` per key is written.

A new key is written the other way round (``Secret``, ``Key``, then its gate item): a key is
usable only once its gate item exists, so a half-created key is never usable. No
``TransactWriteItems``: moto deep-copies a table on each (docs/design.md, measured facts), and
the order above keeps every intermediate state safe. Creating a key writes four small items
whatever the tenant's size; a tenant's counters live on its counter shards
(``functions/gate/admin.py`` ``configure``).

Rules worth knowing:

* Delegation is one level deep: a delegated key cannot delegate. Its scopes are a subset of
  its parent's, its expiry is clamped to its parent's, and a parent's status is cascaded to
  its children's gate items, so suspending a parent pauses its children.
* Revoking is final and cascades to delegated children; revoking a revoked key is a no-op
  that still returns it. Suspension (the spike detector) does not cascade; reinstating
  makes a suspended key active again.
* Every error is a :class:`~functions.keys.errors.KeyServiceError` raised before any write,
  unless a concurrent change is detected mid-way (then :class:`Conflict`, and what was
  written is undone where it could be).
* No secret and no hash ever reaches a log, an error, an audit record or a view.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from pynamodb.exceptions import DoesNotExist, PutError, UpdateError
from pynamodb.expressions.condition import Condition

from functions.common import keyformat
from functions.common.models import (
    ACTIVE,
    REVOKED,
    SUSPENDED,
    AuditRecord,
    GateItem,
    Key,
    Plan,
    Secret,
    Tenant,
)
from functions.common.routes import SCOPES
from functions.gate import admin as gate
from functions.gate import items as gate_items
from functions.keys import rules, tree
from functions.keys.durations import parse_duration
from functions.keys.errors import (
    AlreadyExists,
    Conflict,
    InvalidInput,
    NotFound,
    quote,
    redact,
)
from functions.keys.views import audit_view, iso, iso_seconds, key_view, plan_view, tenant_view

log = logging.getLogger("tollgate.keys")

NO_ID: Final = "-"  # AuditRecord.tenant_id / key_id when the event has none (plan events)
OLD_SECRET_RETENTION: Final = 30 * 86_400  # a rotated-out Secret item lives this long past grace
REVOKE_BATCH: Final = 50  # gate entries per UpdateItem (expression size limit is 4 KB)
DEFAULT_GRACE: Final = "1h"


def default_actor() -> str:
    """Who is acting: ``$TOLLGATE_ACTOR``, else ``cli:<login name>``."""
    actor = os.environ.get("TOLLGATE_ACTOR", "").strip()
    if actor:
        return actor
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        user = "unknown"
    return f"cli:{user}"


def _conditional_failed(exc: PutError | UpdateError) -> bool:
    return exc.cause_response_code == "ConditionalCheckFailedException"


def _sanitize(value: Any) -> Any:
    """Make ``value`` storable in an audit record's details, with secrets redacted."""
    if isinstance(value, Mapping):
        return {str(k): _sanitize(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_sanitize(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


class KeyService:
    """Plans, tenants, keys and audit. Stateless apart from an injectable clock.

    Data access goes through the pynamodb models (bound to table names by
    :func:`functions.common.models.bind_tables`); connections are built on first use.
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.time, gate_table: str | None = None
    ) -> None:
        self._clock = clock
        self.gate_table = gate_table or GateItem.Meta.table_name  # bound by bind_tables

    def now(self) -> float:
        return self._clock()

    # ---------------------------------------------------------------- plans

    def create_plan(
        self,
        name: str,
        *,
        requests_per_minute: int | None = None,
        requests_per_month: int | None = None,
        tokens_per_month: int | None = None,
        test_requests_per_month: int | None = None,
        test_tokens_per_month: int | None = None,
        counter_shards: int = 1,
        scopes: Iterable[str] | None = None,
        models: Iterable[str] | None = None,
        tools: Iterable[str] | None = None,
        price_per_1k_prompt: str = "0",
        price_per_1k_completion: str = "0",
        spike_policy: str = "suspend",
        spike_factor: float = 10,
        spike_floor_tpm: int = 1000,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Create a plan; :class:`AlreadyExists` if the name is taken.

        Limits left as None are unlimited; ``tools`` None entitles every tool.
        """
        plan = Plan(
            name=rules.plan_name(name),
            requests_per_minute=rules.limit("requests per minute", requests_per_minute),
            requests_per_month=rules.limit("requests per month", requests_per_month),
            tokens_per_month=rules.limit("tokens per month", tokens_per_month),
            test_requests_per_month=rules.limit("test requests per month", test_requests_per_month),
            test_tokens_per_month=rules.limit("test tokens per month", test_tokens_per_month),
            counter_shards=rules.counter_shards(counter_shards),
            scopes=rules.scopes(sorted(SCOPES) if scopes is None else scopes),
            models=rules.models(models),
            tools=rules.tools(tools),
            price_prompt_micros_per_1k=rules.price_micros(
                "price per 1k prompt tokens", price_per_1k_prompt
            ),
            price_completion_micros_per_1k=rules.price_micros(
                "price per 1k completion tokens", price_per_1k_completion
            ),
            spike_policy=rules.spike_policy(spike_policy),
            spike_factor=rules.spike_factor(spike_factor),
            spike_floor_tpm=rules.limit("spike floor (tokens per minute)", spike_floor_tpm),
            created_at=iso(self.now()),
        )
        who = rules.actor(actor or default_actor())
        try:
            plan.save(condition=Plan.name.does_not_exist())
        except PutError as exc:
            if _conditional_failed(exc):
                raise AlreadyExists(f"plan {quote(name)} already exists") from None
            raise
        view = plan_view(plan)
        self._audit("plan.created", actor=who, details={"plan": plan.name})
        log.info("plan %s created", plan.name)
        return view

    def list_plans(self) -> list[dict[str, Any]]:
        return sorted((plan_view(p) for p in Plan.scan()), key=lambda p: p["name"])

    def get_plan(self, name: str) -> dict[str, Any]:
        return plan_view(self._plan(name))

    # -------------------------------------------------------------- tenants

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

    # ----------------------------------------------------------------- keys

    def create_key(
        self,
        tenant_id: str,
        *,
        environment: str = "live",
        principal: str = "default",
        scopes: Iterable[str] | None = None,
        expires_in: int | str | None = None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Issue a key for an active tenant. Returns its view plus ``secret`` (shown once).

        ``scopes`` default to the tenant's plan scopes and must be a subset of them;
        ``expires_in`` is seconds or a duration such as ``30d`` (None: never expires).
        """
        rules.tenant_id(tenant_id)
        rules.environment(environment)
        rules.principal(principal)
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
    ) -> dict[str, Any]:
        """Issue a child key (e.g. for an agent) under an active, non-delegated parent.

        Same tenant and environment; scopes a subset of the parent's (default: the parent's
        that the tenant's plan still allows);
        an optional token budget; an expiry never later than the parent's (a later request is
        clamped, reported as ``expiry_clamped``). One level only: a delegated key cannot
        delegate, which keeps revocation cascades and budgets simple to reason about.
        """
        rules.key_id(parent_key_id)
        rules.principal(principal)
        budget = rules.token_budget(token_budget)
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
        return key_view(self._key(key_id), self.now())

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

    def revoke(
        self,
        *,
        key_id: str | None = None,
        secret: str | None = None,
        tenant_id: str | None = None,
        reason: str,
        actor: str | None = None,
    ) -> dict[str, list[str]]:
        """Revoke one key, the key of a (leaked) secret, or every key of a tenant, with
        their delegated children. Idempotent. Returns ``{"revoked": [key ids]}``.

        Enforcement first: one ``UpdateItem`` on the tenant item marks every gate entry
        revoked (in batches of :data:`REVOKE_BATCH` for very large tenants), then the ``Key``
        records, then one audit record per key.
        """
        given = [x is not None for x in (key_id, secret, tenant_id)]
        if sum(given) != 1:
            raise InvalidInput("give exactly one of a key id, --secret or --tenant")
        why = rules.reason(reason)
        who = rules.actor(actor or default_actor())
        via: str
        if key_id is not None:
            via = "key"
            root = self._key(rules.key_id(key_id))
            tenant = self._tenant(root.tenant_id)
            roots = [root.key_id]
        elif secret is not None:
            via = "secret"
            found = self._secret(secret)
            tenant = self._tenant(found.tenant_id)
            roots = [found.key_id]
        else:
            assert tenant_id is not None
            via = "tenant"
            tenant = self._tenant(rules.tenant_id(tenant_id))
            roots = []
        records = {k.key_id: k for k in Key.by_tenant.query(tenant.tenant_id)}
        if via == "tenant":
            roots = sorted(records)
        parent_of: dict[str, str | None] = {kid: k.parent_key_id for kid, k in records.items()}
        for kid in roots:
            if kid not in parent_of:
                found_key = self._maybe_key(kid)
                parent_of[kid] = found_key.parent_key_id if found_key else None
        # Enforcement first, each named key before its children: a child delegated while
        # this runs re-reads its parent after it is written (gate.new_key_item) and sees it.
        for kid in dict.fromkeys(roots):
            gate.set_status(self.gate_table, kid, parent_of[kid], REVOKED, only_from=None)
            if parent_of[kid] is None:
                for child in gate.children(self.gate_table, kid):
                    parent_of[child] = kid
        targets = tree.with_descendants(roots, parent_of)
        named = set(roots)
        for kid in targets:
            if kid not in named:
                gate.set_status(self.gate_table, kid, parent_of[kid], REVOKED, only_from=None)
        for kid in targets:
            key = records.get(kid) or self._maybe_key(kid)
            was = key.status if key is not None else None
            if key is not None and key.status != REVOKED:
                key.update(actions=[Key.status.set(REVOKED), Key.status_reason.set(why)])
            details: dict[str, Any] = {"via": via}
            cause = tree.root_of(kid, parent_of, named)
            if cause != kid:
                details["cascade_from"] = cause
            if was == REVOKED:
                details["already_revoked"] = True
            self._audit(
                "key.revoked",
                tenant_id=tenant.tenant_id,
                key_id=kid,
                actor=who,
                reason=why,
                details=details,
            )
        log.info("revoked %d key(s) of tenant %s via %s", len(targets), tenant.tenant_id, via)
        return {"revoked": targets}

    def reinstate(self, key_id: str, *, reason: str, actor: str | None = None) -> dict[str, Any]:
        """Make a suspended key active again. A revoked key stays revoked (:class:`Conflict`)."""
        rules.key_id(key_id)
        why = rules.reason(reason)
        who = rules.actor(actor or default_actor())
        key = self._key(key_id)
        entry = self._entry(key)
        state = entry.get(gate_items.STATUS)
        if state == REVOKED or key.status == REVOKED:
            raise Conflict(f"key {key_id} is revoked; revocation is final")
        if state != SUSPENDED:
            raise Conflict(f"key {key_id} is {state}, not suspended; nothing to reinstate")
        if not gate.set_status(
            self.gate_table, key_id, key.parent_key_id, ACTIVE, only_from=SUSPENDED
        ):
            raise Conflict(f"key {key_id} changed while reinstating; try again")
        if key.parent_key_id is None:
            gate.cascade(self.gate_table, key_id, ACTIVE, self.now())
        key.update(actions=[Key.status.set(ACTIVE), Key.status_reason.set(why)])
        self._audit("key.reinstated", tenant_id=key.tenant_id, key_id=key_id, actor=who, reason=why)
        log.info("key %s reinstated", key_id)
        return key_view(key, self.now())

    def suspend(
        self,
        key_id: str,
        *,
        reason: str,
        actor: str,
        evidence: Mapping[str, Any] | None = None,
    ) -> bool:
        """Suspend an active key (the spike detector's action). Returns False, writing
        nothing, if the key is not active any more (already suspended or revoked), so a
        retried or replayed detection is harmless. Does not cascade: the authorizer refuses
        a delegated key whose parent is not active.
        """
        rules.key_id(key_id)
        why = rules.reason(reason)
        who = rules.actor(actor)
        key = self._key(key_id)
        if not gate.set_status(
            self.gate_table, key_id, key.parent_key_id, SUSPENDED, only_from=ACTIVE
        ):
            return False
        if key.parent_key_id is None:  # its children stop with it (and resume with it)
            gate.cascade(self.gate_table, key_id, SUSPENDED, self.now())
        key.update(actions=[Key.status.set(SUSPENDED), Key.status_reason.set(why)])
        self._audit(
            "key.suspended",
            tenant_id=key.tenant_id,
            key_id=key_id,
            actor=who,
            reason=why,
            details={"evidence": dict(evidence or {})},
        )
        log.info("key %s suspended", key_id)
        return True

    # ---------------------------------------------------------------- audit

    def audit(
        self, *, key_id: str | None = None, tenant_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Audit rows, oldest first: of a key, of a tenant, of both filters, or all."""
        records: Iterable[AuditRecord]
        if key_id is not None:
            self._key(rules.key_id(key_id))
            records = AuditRecord.by_key.query(key_id)
            if tenant_id is not None:
                self._tenant(rules.tenant_id(tenant_id))
                records = [r for r in records if r.tenant_id == tenant_id]
        elif tenant_id is not None:
            self._tenant(rules.tenant_id(tenant_id))
            records = AuditRecord.query(tenant_id)
        else:
            records = AuditRecord.scan()
        return [audit_view(r) for r in sorted(records, key=lambda r: r.event_id)]

    # ----------------------------------------------------------------- seed

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

    # ------------------------------------------------------------- internals

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
    def _plan(name: str) -> Plan:
        rules.plan_name(name)
        try:
            return Plan.get(name, consistent_read=True)
        except DoesNotExist:
            raise NotFound(f"unknown plan {quote(name)}") from None

    @staticmethod
    def _tenant(tenant_id: str) -> Tenant:
        rules.tenant_id(tenant_id)
        try:
            return Tenant.get(tenant_id, consistent_read=True)
        except DoesNotExist:
            raise NotFound(f"unknown tenant {quote(tenant_id)}") from None

    @staticmethod
    def _key(key_id: str) -> Key:
        rules.key_id(key_id)
        try:
            return Key.get(key_id, consistent_read=True)
        except DoesNotExist:
            raise NotFound(f"unknown key {quote(key_id)}") from None

    @staticmethod
    def _maybe_key(key_id: str) -> Key | None:
        try:
            return Key.get(key_id, consistent_read=True)
        except DoesNotExist:
            return None

    @staticmethod
    def _secret(secret: str) -> Secret:
        parsed = keyformat.parse(secret.strip() if isinstance(secret, str) else secret)
        if parsed is None:  # never echo what was given: it may be a real secret, mistyped
            raise InvalidInput("the secret is not a well-formed Tollgate key")
        try:
            return Secret.get(parsed.secret_hash, consistent_read=True)
        except DoesNotExist:
            raise NotFound("no key has this secret") from None

    def _entry(self, key: Key) -> dict[str, Any]:
        entry = gate.get_key_item(self.gate_table, key.key_id, key.parent_key_id)
        if entry is None:  # a half-created key: never usable
            raise Conflict(f"key {key.key_id} was never completed (no gate item); create a new one")
        return entry

    @staticmethod
    def _status(key: Key, entry: Mapping[str, Any], now: float) -> str:
        """The effective status: the gate's, or ``expired``."""
        state = str(entry.get(gate_items.STATUS, REVOKED))
        if state == ACTIVE and key.expires_at is not None and key.expires_at <= now:
            return "expired"
        return state

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
            created_at=iso(now),
            expires_at=expires_at,
            secret_serial=1,
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
        if parent_key_id:
            details.update(parent_key_id=parent_key_id, token_budget=token_budget)
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

    def _audit(
        self,
        action: str,
        *,
        actor: str,
        tenant_id: str = NO_ID,
        key_id: str = NO_ID,
        reason: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Append one audit record (never overwrites one: conditional on not existing)."""
        for _ in range(3):
            now = self.now()
            at = iso(now)
            record = AuditRecord(
                tenant_id=tenant_id,
                event_id=f"{at}#{secrets.token_hex(6)}",
                at=at,
                action=action,
                key_id=key_id,
                actor=redact(actor),
                reason=redact(reason),
                details=_sanitize(details) if details else None,
            )
            try:
                record.save(condition=AuditRecord.event_id.does_not_exist())
                return
            except PutError as exc:
                if not _conditional_failed(exc):
                    raise
        raise Conflict("could not append an audit record (event id collisions)")


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
        ),
        test=gate.EnvLimits(
            None if plan.test_requests_per_month is None else int(plan.test_requests_per_month),
            None if plan.test_tokens_per_month is None else int(plan.test_tokens_per_month),
        ),
    )
