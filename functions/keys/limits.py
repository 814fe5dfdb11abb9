"""Per-key overrides of the plan's per-minute limit (``tollgate keys set-limit``).

The override lives on the key's gate item (``kr``, functions/gate/items.py), where the
authorizer's key write reads it in the same condition that counts the request
(functions/gate/admission.py ``key_update``): it wins over the plan's ``rpm``, higher or
lower, and is exact from the next request on, under any concurrency, as the plan's is. A
delegated key's override is its own (a parent's is not inherited, and a child's may be
higher than its parent's: each key counts its own minute). Cleared (None), the plan's limit
applies again. Every change is audited (``key.limit_set``).
"""

from __future__ import annotations

from typing import Any

from functions.common.models import REVOKED, Key
from functions.gate import admin as gate
from functions.gate import items as gate_items
from functions.keys import rules
from functions.keys.audit import AuditMixin, default_actor
from functions.keys.base import log
from functions.keys.errors import Conflict
from functions.keys.views import key_view


class LimitsMixin(AuditMixin):
    """``set_limit``: the one per-key limit override."""

    def set_limit(
        self,
        key_id: str,
        *,
        requests_per_minute: int | str | None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Set (a whole number >= 0; 0 admits nothing) or clear (None / ``"none"``) a key's
        own requests-per-minute limit. A revoked key's limit cannot change. Returns the key
        view (``requests_per_minute``: the override, None when the plan's applies)."""
        rules.key_id(key_id)
        rpm = rules.requests_per_minute(requests_per_minute)
        who = rules.actor(actor or default_actor())
        key = self._key(key_id)
        entry = self._entry(key)
        if str(entry.get(gate_items.STATUS)) == REVOKED:
            raise Conflict(f"key {key_id} is revoked; its limit cannot change")
        before = entry.get(gate_items.KEY_RPM)
        if not gate.set_key_rpm(self.gate_table, key_id, key.parent_key_id, rpm):
            raise Conflict(f"key {key_id} is revoked; its limit cannot change")
        key.update(
            actions=[
                Key.requests_per_minute.set(rpm)
                if rpm is not None
                else Key.requests_per_minute.remove()
            ]
        )
        self._audit(
            "key.limit_set",
            tenant_id=key.tenant_id,
            key_id=key_id,
            actor=who,
            details={
                "requests_per_minute": rpm,
                "previous": None if before is None else int(before),
            },
        )
        log.info("key %s per-minute limit set to %s", key_id, rpm)
        return key_view(key, self.now())
