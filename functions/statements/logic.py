"""A tenant's statement for a month: line items by model, principal and plan, with totals.

Built from the month's ``line`` rollup items (live usage only: test-environment events
never reach them, functions/usage/logic.py), and checked against the month's ``all`` item,
which the aggregator writes independently: a mismatch is a :class:`StatementMismatch` and
no statement is produced.

Amounts: each request's cost is computed once, when it is served, in integer micro-dollars
(rounded half up: functions/api/usage.py), and a line's amount is the exact sum of its
requests' costs. So the total equals the sum of the raw usage events to the micro-dollar;
the unit prices are shown for reference (the plan's prices per 1,000 tokens), and
``tokens x price`` can differ from the amount by the per-request rounding.

Since issue 14 each request is priced per model (functions/pricing/catalogue.py) and its
usage event carries the price it was charged at; a line's amount is still the exact sum of
its events' ``cost_micros``, so a price changed mid-month shows as two prices in the events
and one exact amount here. Lines and totals also carry ``cached_tokens`` and
``reasoning_tokens`` (parts of the prompt and completion tokens, where the provider
reported them) and ``cost_usd`` (the same exact amount as ``amount_usd``, the name the usage
rows use). A model name no catalogue or route knows is one ``unknown`` line
(functions/usage/logic.py).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from functions.usage.logic import Counters, parse_line_value, usd

CURRENCY: Final = "USD"
CSV_COLUMNS: Final = (
    "tenant_id",
    "period",
    "model",
    "principal",
    "plan",
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "estimated",
    "unit_price_prompt_per_1k_usd",
    "unit_price_completion_per_1k_usd",
    "amount_usd",
    "cost_usd",
)
ROUNDING_NOTE: Final = (
    "Amounts are the exact sums of each request's cost, computed when served in integer "
    "micro-dollars (rounded half up) at the price each request was charged at (kept in its "
    "usage event); unit prices are the plan's flat prices per 1,000 tokens, if any."
)


class StatementMismatch(Exception):
    """The line items do not add up to the month's total: the rollups need reconciling."""


@dataclass(frozen=True)
class Prices:
    prompt_micros_per_1k: int
    completion_micros_per_1k: int


@dataclass(frozen=True)
class LineItem:
    model: str
    principal: str
    plan: str
    counters: Counters
    prices: Prices | None

    def as_dict(self) -> dict[str, Any]:
        c = self.counters
        return {
            "model": self.model,
            "principal": self.principal,
            "plan": self.plan,
            "requests": c.requests,
            "errors": c.errors,
            "prompt_tokens": c.prompt_tokens,
            "completion_tokens": c.completion_tokens,
            "cached_tokens": c.cached_tokens,
            "reasoning_tokens": c.reasoning_tokens,
            "estimated": c.estimated,
            "unit_price_prompt_per_1k_usd": (
                usd(self.prices.prompt_micros_per_1k) if self.prices else None
            ),
            "unit_price_completion_per_1k_usd": (
                usd(self.prices.completion_micros_per_1k) if self.prices else None
            ),
            "amount_usd": usd(c.cost_micros),
            "amount_micros": c.cost_micros,
            "cost_usd": usd(c.cost_micros),
        }


@dataclass(frozen=True)
class Statement:
    tenant_id: str
    period: str
    lines: tuple[LineItem, ...]
    generated_at: str

    @property
    def totals(self) -> Counters:
        total = Counters()
        for line in self.lines:
            total.add(line.counters)
        return total

    def as_dict(self) -> dict[str, Any]:
        t = self.totals
        return {
            "tenant_id": self.tenant_id,
            "period": self.period,
            "currency": CURRENCY,
            "environment": "live",
            "generated_at": self.generated_at,
            "line_items": [line.as_dict() for line in self.lines],
            "totals": {
                "requests": t.requests,
                "errors": t.errors,
                "prompt_tokens": t.prompt_tokens,
                "completion_tokens": t.completion_tokens,
                "cached_tokens": t.cached_tokens,
                "reasoning_tokens": t.reasoning_tokens,
                "estimated": t.estimated,
                "amount_usd": usd(t.cost_micros),
                "amount_micros": t.cost_micros,
                "cost_usd": usd(t.cost_micros),
            },
            "note": ROUNDING_NOTE,
        }

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for line in self.lines:
            row = {"tenant_id": self.tenant_id, "period": self.period, **line.as_dict()}
            writer.writerow(["" if row[c] is None else row[c] for c in CSV_COLUMNS])
        t = self.totals
        writer.writerow(
            [self.tenant_id, self.period, "TOTAL", "", "", t.requests, t.errors,
             t.prompt_tokens, t.completion_tokens, t.cached_tokens, t.reasoning_tokens,
             t.estimated, "", "", usd(t.cost_micros), usd(t.cost_micros)]
        )  # fmt: skip
        return out.getvalue()


def build(
    tenant_id: str,
    period: str,
    lines: Iterable[tuple[str, Counters]],
    total: Counters | None,
    prices: Callable[[str], Prices | None],
    generated_at: str,
) -> Statement:
    """A statement from the month's line rollups (``(line value, counters)``) and its
    ``all`` rollup (``total``; None when the tenant had no live usage)."""
    items = []
    for value, counters in lines:
        model, principal, plan = parse_line_value(value)
        items.append(LineItem(model, principal, plan, counters, prices(plan)))
    items.sort(key=lambda i: (i.model, i.principal, i.plan))
    statement = Statement(tenant_id, period, tuple(items), generated_at)
    if statement.totals != (total or Counters()):
        raise StatementMismatch(
            f"line items of {tenant_id} {period} do not add up to the month's total "
            "(run `tollgate usage reconcile`)"
        )
    return statement
