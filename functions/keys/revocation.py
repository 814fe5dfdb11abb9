"""Stopping keys: revoke (final, cascades to delegated children), suspend (the spike detector's
action) and reinstate. Enforcement first: the gate items, then the ``Key`` records, then audit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.common.models import ACTIVE, REVOKED, SUSPENDED, Key
from functions.gate import admin as gate
from functions.gate import items as gate_items
from functions.keys import rules, tree
from functions.keys.audit import AuditMixin, default_actor
from functions.keys.base import log
from functions.keys.errors import Conflict, InvalidInput
from functions.keys.views import key_view


class RevocationMixin(AuditMixin):
    """Revoke, suspend and reinstate keys."""

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

        Enforcement first: each named key's gate item, then each child's (found by a strongly
        consistent Query of the parent's partition), then the ``Key`` records, then one audit
        record per key.
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
        """Suspend an active key (the spike detector's action) and, for a parent, its
        children. Returns False, writing nothing, if the key is not active any more (already
        suspended or revoked), so a retried or replayed detection is harmless -- except that
        a suspension an earlier attempt wrote only to the gate (it failed before the ``Key``
        record) is finished: the cascade, the record and the audit are written then.
        """
        rules.key_id(key_id)
        why = rules.reason(reason)
        who = rules.actor(actor)
        key = self._key(key_id)
        if not gate.set_status(
            self.gate_table, key_id, key.parent_key_id, SUSPENDED, only_from=ACTIVE
        ):
            entry = gate.get_key_item(self.gate_table, key_id, key.parent_key_id)
            unfinished = (entry or {}).get(gate_items.STATUS) == SUSPENDED and key.status == ACTIVE
            if not unfinished:
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
