"""The billing export, pure: which quantities of which tenant-hour go where, and under
which identifier. Nothing here knows DynamoDB, Stripe or AWS.

What is exported: the hourly ``all`` rollup of a tenant (``hour#<YYYY-MM-DDTHH>#all#-``,
live usage only: functions/usage/logic.py), as three metrics:

=================  ===========================================  =========================
metric             quantity                                     unit
=================  ===========================================  =========================
``requests``       requests (errors included, as on statements) requests
``tokens``         prompt + completion tokens                   tokens
``cost_micros``    the exact sum of the requests' costs         micro-dollars (1e-6 USD)
=================  ===========================================  =========================

Cost goes out in micro-dollars, never rounded: a Stripe price of ``unit_amount_decimal
0.0001`` (cents) per unit, or a Marketplace dimension priced at 0.000001 USD per unit,
bills it exactly; the sum of the hours is the statement's total to the micro-dollar.

Only *closed* hours are exported: an hour is due when it ended at least
:data:`SETTLE_SECONDS` ago (a request may run 15 minutes and be counted in the hour it
started; the reservation sweep settles killed ones within 5 more; the aggregator is
seconds behind). What still arrives later for an exported hour is *late usage*: Stripe
gets the difference as a further event with the next identifier; Marketplace accepts no
second record for a customer, dimension and hour, so it stays in the ledger as ``late``
and reconcile reports it (docs/billing.md, "Billing export").
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from functions.usage.logic import Counters, granularity_of, period_bounds_ms

STRIPE: Final = "stripe"
MARKETPLACE: Final = "aws-marketplace"
DESTINATIONS: Final = (STRIPE, MARKETPLACE)

METRICS: Final = ("requests", "tokens", "cost_micros")
# Stripe meters (their event_name) and Marketplace dimensions, per metric: configure the
# meters and the product's dimensions with exactly these names (docs/billing.md).
STRIPE_EVENT_NAMES: Final = {
    "requests": "tollgate_requests",
    "tokens": "tollgate_tokens",
    "cost_micros": "tollgate_cost_micros",
}
MARKETPLACE_DIMENSIONS: Final = {
    "requests": "requests",
    "tokens": "tokens",
    "cost_micros": "cost_micros",
}
# Marketplace's UsageQuantity is an int32 (botocore's model: 0..2147483647).
MARKETPLACE_MAX_QUANTITY: Final = 2_147_483_647

SETTLE_SECONDS: Final = 30 * 60
# Stripe enforces identifier uniqueness for "at least 24 hours": a pending event older than
# this is never re-sent blindly (it could bill twice); reconcile shows it.
PENDING_MAX_AGE_SECONDS: Final = 20 * 3600
IDENTIFIER_MAX: Final = 100  # Stripe's limit on a meter event identifier


class BillingInputError(ValueError):
    """A billing question that cannot be asked (bad destination or period)."""


def check_destination(destination: str) -> str:
    if destination not in DESTINATIONS:
        raise BillingInputError(f"--to must be one of {', '.join(DESTINATIONS)}")
    return destination


def check_month(period: str) -> str:
    try:
        ok = granularity_of(period) == "month"
    except ValueError:
        ok = False
    if not ok:
        raise BillingInputError(f"period must be a month, YYYY-MM, not {period[:20]!r}")
    return period


def quantities(counters: Counters) -> dict[str, int]:
    """The exported quantity of each metric in a rollup's counters."""
    return {
        "requests": counters.requests,
        "tokens": counters.prompt_tokens + counters.completion_tokens,
        "cost_micros": counters.cost_micros,
    }


def hour_start(hour: str) -> int:
    """Epoch seconds at which ``YYYY-MM-DDTHH`` (UTC) begins."""
    return calendar.timegm(time.strptime(hour, "%Y-%m-%dT%H"))


def hours_of(period: str) -> Iterator[str]:
    """Every hour of the month ``period``, oldest first."""
    start_ms, end_ms = period_bounds_ms(period)
    for s in range(start_ms // 1000, end_ms // 1000, 3600):
        yield time.strftime("%Y-%m-%dT%H", time.gmtime(s))


def is_due(hour: str, now_s: float, settle_s: int = SETTLE_SECONDS) -> bool:
    """True once ``hour`` has closed and settled (see the module docstring)."""
    return hour_start(hour) + 3600 + settle_s <= now_s


def day_of(hour: str) -> str:
    return hour[:10]


def identifier(tenant_id: str, hour: str, metric: str, seq: int) -> str:
    """The Stripe identifier of a tenant-hour-metric's ``seq``-th event (0: the hour's
    quantity; 1, 2, ...: late usage). Deterministic: a retry or a rerun sends the same one."""
    base = f"tg:{tenant_id}:{hour}:{metric}"
    ident = base if seq == 0 else f"{base}:{seq}"
    if len(ident) > IDENTIFIER_MAX:  # tenant ids are at most 64 characters: cannot happen
        raise ValueError(f"identifier longer than {IDENTIFIER_MAX}: {ident[:40]}...")
    return ident


@dataclass(frozen=True, slots=True)
class Meter:
    """One quantity to send: a tenant-hour-metric's ``seq``-th event."""

    tenant_id: str
    hour: str
    metric: str
    seq: int
    value: int

    @property
    def identifier(self) -> str:
        return identifier(self.tenant_id, self.hour, self.metric, self.seq)

    def as_pending(self) -> dict[str, int]:
        return {"seq": self.seq, "value": self.value}


@dataclass(frozen=True, slots=True)
class Entry:
    """What the ledger says of one tenant-hour-metric."""

    sent: int = 0  # quantity acknowledged by the destination
    events: int = 0  # events acknowledged (the next event's seq)
    result: str = ""  # the last result: sent | duplicate | an error code

    @classmethod
    def of(cls, raw: Mapping[str, Any] | None) -> Entry:
        raw = raw or {}
        return cls(int(raw.get("sent", 0)), int(raw.get("events", 0)), str(raw.get("result", "")))

    def as_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "events": self.events, "result": self.result}


def plan_hour(
    tenant_id: str,
    hour: str,
    counters: Counters,
    ledger: Mapping[str, Entry],
    *,
    deltas: bool,
) -> tuple[list[Meter], dict[str, int]]:
    """The events that bring a tenant-hour's exported quantities up to its rollup, and the
    late usage that cannot be sent (``deltas=False``: Marketplace, one record per hour).

    A quantity of 0 is never sent; nothing is ever sent negative (rollups only grow).
    """
    meters: list[Meter] = []
    late: dict[str, int] = {}
    for metric, quantity in quantities(counters).items():
        entry = ledger.get(metric, Entry())
        missing = quantity - entry.sent
        if missing <= 0:
            continue
        if entry.events and not deltas:
            late[metric] = missing
            continue
        meters.append(Meter(tenant_id, hour, metric, entry.events, missing))
    return meters, late
