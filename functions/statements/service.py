"""Reading what a statement needs: the month's line and total rollups, and plan prices."""

from __future__ import annotations

import calendar
import time
from typing import Any

from functions.statements.logic import Prices, Statement, build
from functions.usage.logic import MEASURES, TOTAL, Counters, granularity_of, sort_key
from functions.usage.reports import UsageQueryError, rollups


def plan_prices(name: str) -> Prices | None:
    """The prices of plan ``name`` (plans are immutable once created); None if unknown."""
    from functions.common.models import Plan

    try:
        plan = Plan.get(name, consistent_read=True)
    except Plan.DoesNotExist:
        return None
    return Prices(int(plan.price_prompt_micros_per_1k), int(plan.price_completion_micros_per_1k))


def statement(tenant_id: str, period: str, now_s: float | None = None) -> Statement:
    """The statement of ``tenant_id`` for the month ``period`` (``YYYY-MM``)."""
    try:
        if granularity_of(period) != "month":
            raise ValueError("a statement's period is a month: YYYY-MM")
    except ValueError as exc:
        raise UsageQueryError(str(exc)) from None
    lines = [(k.parts[3], c) for k, c in rollups(tenant_id, f"month#{period}#line#")]
    totals = dict(rollups(tenant_id, sort_key("month", period, "all", TOTAL)))
    total = next(iter(totals.values()), None)
    cache: dict[str, Prices | None] = {}

    def prices(plan: str) -> Prices | None:
        if plan not in cache:
            cache[plan] = plan_prices(plan)
        return cache[plan]

    generated = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now_s))
    return build(tenant_id, period, lines, total, prices, generated)


def tenant_ids() -> list[str]:
    """Every tenant (the monthly run writes a statement for each)."""
    from functions.common.models import Tenant

    return sorted(t.tenant_id for t in Tenant.scan(attributes_to_get=["tenant_id"]))


def daily(tenant_id: str, period: str) -> list[dict[str, Any]]:
    """The tenant's live usage per day of the month ``period``, oldest first (days without
    usage left out): the ``day#YYYY-MM-DD#all#-`` rollups, what the HTML statement charts.

    One batch read of the month's (at most 31) day totals by key, not a query over the
    month's day items, which also hold one item per key, principal and model per day."""
    from functions.common.models import Rollup

    year, month = (int(p) for p in period.split("-"))
    days = [f"{period}-{n:02d}" for n in range(1, calendar.monthrange(year, month)[1] + 1)]
    keys = [(tenant_id, sort_key("day", day, "all", TOTAL)) for day in days]
    out = []
    for item in Rollup.batch_get(keys, consistent_read=True):
        counters = Counters(**{m: int(getattr(item, m) or 0) for m in MEASURES})
        out.append({"day": item.sk.split("#")[1], **counters.as_dict()})
    return sorted(out, key=lambda d: str(d["day"]))
