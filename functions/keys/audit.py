"""The append-only audit trail: who acts (:func:`default_actor`), how details are made safe to
store (:func:`_sanitize`, secrets redacted), appending one record and reading them back."""

from __future__ import annotations

import getpass
import os
import secrets
from collections.abc import Iterable, Mapping
from typing import Any, Final

from pynamodb.exceptions import PutError

from functions.common.models import AuditRecord
from functions.keys import rules
from functions.keys.base import KeyServiceBase, _conditional_failed
from functions.keys.errors import Conflict, redact
from functions.keys.views import audit_view, iso

NO_ID: Final = "-"  # AuditRecord.tenant_id / key_id when the event has none (plan events)


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


class AuditMixin(KeyServiceBase):
    """Reads the audit trail and appends to it (every other part audits through this)."""

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
