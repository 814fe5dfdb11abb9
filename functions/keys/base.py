"""What every part of :class:`~functions.keys.service.KeyService` shares: the clock, the gate
table, the ``tollgate.keys`` logger and the lookups that turn an id into its record (or a
:class:`~functions.keys.errors.NotFound`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError, UpdateError

from functions.common import keyformat
from functions.common.models import ACTIVE, REVOKED, GateItem, Key, Plan, Secret, Tenant
from functions.gate import admin as gate
from functions.gate import items as gate_items
from functions.keys import rules
from functions.keys.errors import Conflict, InvalidInput, NotFound, quote

log = logging.getLogger("tollgate.keys")


def _conditional_failed(exc: PutError | UpdateError) -> bool:
    return exc.cause_response_code == "ConditionalCheckFailedException"


class KeyServiceBase:
    """State shared by the key service's parts: an injectable clock and the gate table."""

    def __init__(
        self, *, clock: Callable[[], float] = time.time, gate_table: str | None = None
    ) -> None:
        self._clock = clock
        self.gate_table = gate_table or GateItem.Meta.table_name  # bound by bind_tables

    def now(self) -> float:
        return self._clock()

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
