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

from functions.keys.audit import NO_ID, AuditMixin, _sanitize, default_actor
from functions.keys.lifecycle import DEFAULT_GRACE, OLD_SECRET_RETENTION, LifecycleMixin
from functions.keys.plans import PlansMixin
from functions.keys.prices import PricesMixin
from functions.keys.revocation import RevocationMixin
from functions.keys.seed import SeedMixin
from functions.keys.tenants import TenantsMixin, _gate_config

__all__ = [
    "DEFAULT_GRACE",
    "NO_ID",
    "OLD_SECRET_RETENTION",
    "KeyService",
    "_gate_config",
    "_sanitize",
    "default_actor",
]


class KeyService(
    SeedMixin, PlansMixin, PricesMixin, TenantsMixin, LifecycleMixin, RevocationMixin, AuditMixin
):
    """Plans, tenants, keys and audit. Stateless apart from an injectable clock.

    Data access goes through the pynamodb models (bound to table names by
    :func:`functions.common.models.bind_tables`); connections are built on first use.

    Each concern lives in its own module: ``plans``, ``tenants``, ``lifecycle`` (issue,
    delegate, rotate), ``revocation`` (revoke, suspend, reinstate), ``audit`` and ``seed``,
    over the shared lookups of ``base``.
    """
