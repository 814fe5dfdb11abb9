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
    "estimated",
    "unit_price_prompt_per_1k_usd",
    "unit_price_completion_per_1k_usd",
    "amount_usd",
)
ROUNDING_NOTE: Final = (
    "Amounts are the exact sums of each request's cost, computed when served in integer "
    "micro-dollars (rounded half up); unit prices are per 1,000 tokens."
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
            "estimated": c.estimated,
            "unit_price_prompt_per_1k_usd": (
                usd(self.prices.prompt_micros_per_1k) if self.prices else None
            ),
            "unit_price_completion_per_1k_usd": (
                usd(self.prices.completion_micros_per_1k) if self.prices else None
            ),
            "amount_usd": usd(c.cost_micros),
            "amount_micros": c.cost_micros,
        }


# -- keyattrs: the per-tag breakdown ------------------------------------------------------
TAG_NOTE: Final = (
    "Usage by key tag: each request counts once under every tag of its key, so these rows "
    "overlap and do not add up to the total; untagged usage appears in none."
)


@dataclass(frozen=True)
class TagItem:
    """The month's live usage of the keys tagged ``key=value`` (a ``tag`` rollup item)."""

    key: str
    value: str
    counters: Counters

    def as_dict(self) -> dict[str, Any]:
        c = self.counters
        return {
            "tag": f"{self.key}={self.value}",
            "tag_key": self.key,
            "tag_value": self.value,
            "requests": c.requests,
            "errors": c.errors,
            "prompt_tokens": c.prompt_tokens,
            "completion_tokens": c.completion_tokens,
            "estimated": c.estimated,
            "amount_usd": usd(c.cost_micros),
            "amount_micros": c.cost_micros,
        }


def tag_items(values: Iterable[tuple[str, Counters]]) -> tuple[TagItem, ...]:
    items = []
    for value, counters in values:
        key, _, tag_value = value.partition("=")
        items.append(TagItem(key, tag_value, counters))
    return tuple(sorted(items, key=lambda i: (i.key, i.value)))


# -- end keyattrs ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    tenant_id: str
    period: str
    lines: tuple[LineItem, ...]
    generated_at: str
    tags: tuple[TagItem, ...] = ()  # keyattrs: the per-tag breakdown (JSON and table only)

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
                "estimated": t.estimated,
                "amount_usd": usd(t.cost_micros),
                "amount_micros": t.cost_micros,
            },
            "note": ROUNDING_NOTE,
            # keyattrs: usage by key tag (overlapping rows; not in the CSV's invoice lines)
            "by_tag": [item.as_dict() for item in self.tags],
            "by_tag_note": TAG_NOTE,
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
             t.prompt_tokens, t.completion_tokens, t.estimated, "", "", usd(t.cost_micros)]
        )  # fmt: skip
        return out.getvalue()


def build(
    tenant_id: str,
    period: str,
    lines: Iterable[tuple[str, Counters]],
    total: Counters | None,
    prices: Callable[[str], Prices | None],
    generated_at: str,
    tag_lines: Iterable[tuple[str, Counters]] = (),
) -> Statement:
    """A statement from the month's line rollups (``(line value, counters)``) and its
    ``all`` rollup (``total``; None when the tenant had no live usage); ``tag_lines``: the
    month's ``tag`` rollups (``(k=v, counters)``), shown as a breakdown beside the lines."""
    items = []
    for value, counters in lines:
        model, principal, plan = parse_line_value(value)
        items.append(LineItem(model, principal, plan, counters, prices(plan)))
    items.sort(key=lambda i: (i.model, i.principal, i.plan))
    statement = Statement(tenant_id, period, tuple(items), generated_at, tag_items(tag_lines))
    if statement.totals != (total or Counters()):
        raise StatementMismatch(
            f"line items of {tenant_id} {period} do not add up to the month's total "
            "(run `tollgate usage reconcile`)"
        )
    return statement
