"""The export run: each mapped tenant's due hours of a month, to one destination, once.

Exactly once, by a ledger item per tenant, destination and day (``models.BillingItem``,
``export#<destination>#<YYYY-MM-DD>``) and a write-ahead of what is about to be sent:

1. Read the day's ledger. If it holds ``pending`` meters (a run died, or the destination
   gave no clear answer), send them again *verbatim*: same identifier, same quantity.
   Stripe refuses an identifier it holds (treated as delivered), Marketplace answers an
   identical record with success: either way nothing is billed twice.
2. Plan: for each due hour of the day, the quantity of each metric not yet exported
   (the hour's ``all`` rollup minus the ledger's ``sent``); write the plan as ``pending``
   (conditional on the item's version: a concurrent exporter fails here, before sending).
3. Send; then commit: delivered meters move into ``hours`` (``sent`` += quantity,
   ``events`` += 1), rejected ones leave ``pending`` (nothing was stored: planned again
   next run), unknown ones stay ``pending`` for step 1 of the next run.

A crash between 2 and 3 leaves ``pending``: the next run re-sends it. A crash before 2
sent nothing. Rerunning a finished export plans nothing: 0 requests to the destination.
Pending meters older than ``logic.PENDING_MAX_AGE_SECONDS`` are not re-sent (Stripe's
identifier memory is at least 24 h, not forever): they are reported as ``stale`` and
reconcile shows them, for a person to check in Stripe.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from functions.billing import customers as customer_store
from functions.billing.customers import Customer
from functions.billing.logic import (
    PENDING_MAX_AGE_SECONDS,
    SETTLE_SECONDS,
    STRIPE,
    Entry,
    Meter,
    check_destination,
    check_month,
    day_of,
    is_due,
    plan_hour,
)
from functions.billing.sinks import DestinationUnauthorized, Outcome, Sink
from functions.usage.logic import TOTAL, Counters, RollupKey


def ledger_sk(destination: str, day: str) -> str:
    return f"export#{destination}#{day}"


def hourly_totals(tenant_id: str, period: str) -> dict[str, Counters]:
    """The tenant's live total of each hour of ``period`` that had usage."""
    from functions.usage.reports import rollups

    out: dict[str, Counters] = {}
    key: RollupKey
    for key, counters in rollups(tenant_id, f"hour#{period}"):
        _, hour, dimension, value = key.parts
        if dimension == "all" and value == TOTAL:
            out[hour] = counters
    return out


@dataclass
class TenantReport:
    tenant_id: str
    sent: int = 0  # meters the destination accepted now
    duplicates: int = 0  # meters it already held (a re-send after a crash or a lost answer)
    rejected: int = 0
    retry: int = 0  # still pending: unknown outcome, re-sent next run
    stale: int = 0  # pending too long to re-send safely
    late: int = 0  # late usage the destination cannot take (Marketplace)
    requests: int = 0  # meters sent to the destination (requests for Stripe)
    quantities: dict[str, int] = field(default_factory=dict)  # delivered now, per metric
    errors: dict[str, int] = field(default_factory=dict)
    failed: str | None = None  # why this tenant's export stopped (its ledger is intact)

    def count(self, meter: Meter, outcome: Outcome) -> None:
        if outcome.delivered:
            if outcome.code == "duplicate":
                self.duplicates += 1
            else:
                self.sent += 1
            self.quantities[meter.metric] = self.quantities.get(meter.metric, 0) + meter.value
            return
        if outcome.kind == "rejected":
            self.rejected += 1
        else:
            self.retry += 1
        self.errors[outcome.code] = self.errors.get(outcome.code, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "sent": self.sent,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "pending": self.retry,
            "stale": self.stale,
            "late": self.late,
            "requests": self.requests,
            "quantities": dict(sorted(self.quantities.items())),
            "errors": dict(sorted(self.errors.items())),
            "failed": self.failed,
        }


@dataclass
class ExportReport:
    destination: str
    period: str
    tenants: list[TenantReport]
    unmapped: list[str]

    def as_dict(self) -> dict[str, Any]:
        total = {
            k: sum(getattr(t, k) for t in self.tenants)
            for k in ("sent", "duplicates", "rejected", "retry", "stale", "late", "requests")
        }
        total["pending"] = total.pop("retry")
        failed = sorted(t.tenant_id for t in self.tenants if t.failed)
        return {
            "destination": self.destination,
            "period": self.period,
            **total,
            "failed": failed,
            "ok": not failed and not (total["rejected"] or total["pending"] or total["stale"]),
            "tenants": [t.as_dict() for t in self.tenants],
            "unmapped": self.unmapped,
        }


class Day:
    """One ledger item (a tenant-day at a destination), loaded once, saved by version."""

    def __init__(self, tenant_id: str, destination: str, day: str, item: Any = None) -> None:
        from functions.common.models import BillingItem

        self.item = (
            item if item is not None else BillingItem(tenant_id, ledger_sk(destination, day))
        )
        self.tenant_id = tenant_id
        self.hours: dict[str, dict[str, Any]] = _plain(self.item.hours)
        self.pending: dict[str, dict[str, Any]] = _plain(self.item.pending)

    def entries(self, hour: str) -> dict[str, Entry]:
        return {m: Entry.of(raw) for m, raw in self.hours.get(hour, {}).items()}

    def pending_meters(self) -> list[Meter]:
        out = []
        for key, raw in sorted(self.pending.items()):
            hour, metric = key.split("#", 1)
            out.append(Meter(self.tenant_id, hour, metric, int(raw["seq"]), int(raw["value"])))
        return out

    def pending_age(self, now_s: float) -> float:
        at = self.item.pending_at
        return now_s - float(at) if at is not None else 0.0

    def write_ahead(self, meters: Sequence[Meter], now_s: float) -> None:
        if not self.pending:
            self.item.pending_at = int(now_s)
        for m in meters:
            self.pending[f"{m.hour}#{m.metric}"] = m.as_pending()
        self._save()

    def commit(self, outcomes: Iterable[tuple[Meter, Outcome]]) -> None:
        for meter, outcome in outcomes:
            key = f"{meter.hour}#{meter.metric}"
            entry = self.entries(meter.hour).get(meter.metric, Entry())
            if outcome.delivered:
                entry = Entry(entry.sent + meter.value, meter.seq + 1, outcome.code)
                self.pending.pop(key, None)
            elif outcome.kind == "rejected":
                entry = Entry(entry.sent, entry.events, outcome.code)
                self.pending.pop(key, None)
            else:
                entry = Entry(entry.sent, entry.events, outcome.code)
            self.hours.setdefault(meter.hour, {})[meter.metric] = entry.as_dict()
        if not self.pending:
            self.item.pending_at = None
        self._save()

    def _save(self) -> None:
        self.item.hours = self.hours or None
        self.item.pending = self.pending or None
        self.item.updated_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.item.save()  # conditional on the version read: one exporter per day at a time


def _plain(raw: Any) -> dict[str, dict[str, Any]]:
    if raw is None:
        return {}
    values = raw.as_dict() if hasattr(raw, "as_dict") else dict(raw)
    return {str(k): dict(v) for k, v in values.items()}


def export_tenant(
    customer: Customer,
    sink: Sink,
    period: str,
    now_s: float,
    settle_s: int = SETTLE_SECONDS,
) -> TenantReport:
    """Export one tenant's due hours of ``period`` (see the module docstring)."""
    report = TenantReport(customer.tenant_id)
    deltas = sink.destination == STRIPE
    by_day: dict[str, dict[str, Counters]] = defaultdict(dict)
    for hour, counters in hourly_totals(customer.tenant_id, period).items():
        if is_due(hour, now_s, settle_s):
            by_day[day_of(hour)][hour] = counters
    ledgers = _ledgers(customer.tenant_id, sink.destination, period)  # one Query
    for day in by_day:
        if day not in ledgers:
            ledgers[day] = Day(customer.tenant_id, sink.destination, day)
    ledgers = dict(sorted(ledgers.items()))
    # 1. What a run left pending (it died, or the destination gave no clear answer): re-sent
    #    verbatim, all days of the tenant together (Marketplace: 25 records per call).
    blocked: dict[str, set[str]] = {}
    resend: dict[str, list[Meter]] = {}
    for day, ledger in ledgers.items():
        pending = ledger.pending_meters()
        if pending and ledger.pending_age(now_s) > PENDING_MAX_AGE_SECONDS:
            report.stale += len(pending)
            blocked[day] = {f"{m.hour}#{m.metric}" for m in pending}
        elif pending:
            resend[day] = pending
    _send_and_commit(customer, sink, resend, ledgers, report)
    for day in resend:
        blocked[day] = set(ledgers[day].pending)  # unknown still: never planned over
    # 2. What is missing now: written ahead per day, sent together, committed per day.
    planned: dict[str, list[Meter]] = {}
    for day, ledger in ledgers.items():
        meters: list[Meter] = []
        for hour, counters in sorted(by_day.get(day, {}).items()):
            found, late = plan_hour(
                customer.tenant_id, hour, counters, ledger.entries(hour), deltas=deltas
            )
            meters += [m for m in found if f"{m.hour}#{m.metric}" not in blocked.get(day, ())]
            report.late += len(late)
        if meters:
            ledger.write_ahead(meters, now_s)
            planned[day] = meters
    _send_and_commit(customer, sink, planned, ledgers, report)
    return report


def _send_and_commit(
    customer: Customer,
    sink: Sink,
    meters_by_day: dict[str, list[Meter]],
    ledgers: dict[str, Day],
    report: TenantReport,
) -> None:
    meters = [m for day in sorted(meters_by_day) for m in meters_by_day[day]]
    if not meters:
        return
    report.requests += len(meters)
    outcomes = sink.send(customer, meters)
    for day, day_meters in sorted(meters_by_day.items()):
        results = [(m, outcomes[m.identifier]) for m in day_meters]
        for m, o in results:
            report.count(m, o)
        ledgers[day].commit(results)


def _ledgers(tenant_id: str, destination: str, period: str) -> dict[str, Day]:
    """The tenant's ledger items of the month at ``destination``, by day (strongly read)."""
    from functions.common.models import BillingItem

    out = {}
    for item in BillingItem.query(
        tenant_id, BillingItem.sk.startswith(ledger_sk(destination, period)), consistent_read=True
    ):
        day = item.sk.rsplit("#", 1)[1]
        out[day] = Day(tenant_id, destination, day, item)
    return out


def run(
    destination: str,
    period: str,
    sink: Sink,
    *,
    now_s: float | None = None,
    tenants: Sequence[str] | None = None,
    workers: int = 4,
    settle_s: int = SETTLE_SECONDS,
    on_tenant: Callable[[TenantReport], None] | None = None,
) -> ExportReport:
    """Export ``period`` (``YYYY-MM``) to ``destination`` for every mapped tenant (or the
    given ``tenants``); tenants run ``workers`` at a time (each tenant's days in order)."""
    check_destination(destination)
    check_month(period)
    now = time.time() if now_s is None else now_s
    mapped = [c for c in customer_store.all_customers() if c.mapped_to(destination)]
    if tenants is not None:
        wanted = set(tenants)
        mapped = [c for c in mapped if c.tenant_id in wanted]
    mapped_ids = {c.tenant_id for c in mapped}
    unmapped = sorted(set(tenants or _tenant_ids()) - mapped_ids)

    def one(customer: Customer) -> TenantReport:
        try:
            report = export_tenant(customer, sink, period, now, settle_s)
        except DestinationUnauthorized:
            raise  # every tenant would meet it: stop the run
        except Exception as exc:  # the ledger unreachable: this tenant only; rerun resumes
            report = TenantReport(customer.tenant_id, failed=type(exc).__name__)
        if on_tenant is not None:
            on_tenant(report)
        return report

    if workers <= 1 or len(mapped) <= 1:
        reports = [one(c) for c in mapped]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            reports = list(pool.map(one, mapped))
    return ExportReport(destination, period, reports, unmapped)


def _tenant_ids() -> list[str]:
    from functions.common.models import Tenant

    return sorted(t.tenant_id for t in Tenant.scan(attributes_to_get=["tenant_id"]))
