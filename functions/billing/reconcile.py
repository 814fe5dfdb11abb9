"""Reconciliation: what the ledger says was exported == what the statements bill.

Per tenant mapped to the destination, per metric: the month's statement total
(functions/statements/service.py: the ``line`` items, checked against the ``all`` item),
against the sum of ``sent`` over the month's ledger items, plus the usage of hours not yet
due (the current hour and the settle window: exported later, not drift). ``drift`` is the
sum of the absolute differences; it is 0 when every billed unit was exported exactly once.
Pending (unknown outcome), stale and late quantities are shown apart: they are why a drift
is not 0. Nothing here calls the destination; the tests also compare with what the local
Stripe fake and the Marketplace fake received.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from functions.billing import customers as customer_store
from functions.billing.export import hourly_totals, ledger_sk
from functions.billing.logic import (
    METRICS,
    SETTLE_SECONDS,
    Entry,
    check_destination,
    check_month,
    is_due,
    quantities,
)


@dataclass
class TenantReconciliation:
    tenant_id: str
    statement: dict[str, int]
    exported: dict[str, int]
    not_due: dict[str, int]
    pending: dict[str, int]
    error: str | None = None
    mismatches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def drift(self) -> int:
        return sum(abs(m["difference"]) for m in self.mismatches)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "statement": self.statement,
            "exported": self.exported,
            "not_yet_due": self.not_due,
            "pending": self.pending,
            "drift": self.drift,
            "ok": self.drift == 0 and self.error is None and not any(self.pending.values()),
            "error": self.error,
            "mismatches": self.mismatches,
        }


def reconcile_tenant(
    tenant_id: str, destination: str, period: str, now_s: float, settle_s: int = SETTLE_SECONDS
) -> TenantReconciliation:
    from functions.common.models import BillingItem
    from functions.statements.logic import StatementMismatch
    from functions.statements.service import statement

    zero = dict.fromkeys(METRICS, 0)
    exported, not_due, pending = dict(zero), dict(zero), dict(zero)
    try:
        totals = statement(tenant_id, period, now_s).totals
    except StatementMismatch as exc:
        return TenantReconciliation(tenant_id, zero, exported, not_due, pending, error=str(exc))
    billed = quantities(totals)
    for hour, counters in hourly_totals(tenant_id, period).items():
        if not is_due(hour, now_s, settle_s):
            for metric, q in quantities(counters).items():
                not_due[metric] += q
    for item in BillingItem.query(
        tenant_id, BillingItem.sk.startswith(ledger_sk(destination, period)), consistent_read=True
    ):
        for metrics in (item.hours.as_dict() if item.hours else {}).values():
            for metric, raw in metrics.items():
                exported[metric] = exported.get(metric, 0) + Entry.of(raw).sent
        for key, raw in (item.pending.as_dict() if item.pending else {}).items():
            metric = key.split("#", 1)[1]
            pending[metric] = pending.get(metric, 0) + int(raw["value"])
    result = TenantReconciliation(tenant_id, billed, exported, not_due, pending)
    for metric in METRICS:
        difference = billed[metric] - exported[metric] - not_due[metric]
        if difference:
            result.mismatches.append(
                {
                    "metric": metric,
                    "statement": billed[metric],
                    "exported": exported[metric],
                    "not_yet_due": not_due[metric],
                    "difference": difference,
                }
            )
    return result


def reconcile(
    destination: str,
    period: str,
    *,
    now_s: float | None = None,
    tenants: list[str] | None = None,
    settle_s: int = SETTLE_SECONDS,
) -> dict[str, Any]:
    """Every mapped tenant's reconciliation (``ok`` only if every drift is 0)."""
    check_destination(destination)
    check_month(period)
    now = time.time() if now_s is None else now_s
    mapped = [c for c in customer_store.all_customers() if c.mapped_to(destination)]
    if tenants is not None:
        mapped = [c for c in mapped if c.tenant_id in set(tenants)]
    rows = [reconcile_tenant(c.tenant_id, destination, period, now, settle_s) for c in mapped]
    return {
        "destination": destination,
        "period": period,
        "tenants": [r.as_dict() for r in rows],
        "drift": sum(r.drift for r in rows),
        "ok": all(r.as_dict()["ok"] for r in rows),
        "compared": bool(rows),
    }
