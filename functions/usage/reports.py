"""Reading the rollups: usage rows for people and scripts, and reconciliation with raw events.

Reads go through the pynamodb models, so ``tollgate --stack`` (``models.bind_tables``)
and the functions (``TOLLGATE_TABLE_*``) read the same tables.

Reconciliation recomputes, from the raw usage events of a period (``UsageEvent``'s
``by_tenant`` index), every rollup item that lies wholly inside the period, and compares
measure by measure with what the aggregator wrote. Drift is the sum of the absolute
differences: 0, or something is wrong. The index is eventually consistent and the stream
runs seconds behind, so a period still receiving traffic can show transient drift; a
closed period must show 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from functions.usage import logic
from functions.usage.logic import MEASURES, Counters, MalformedEvent, RollupKey, UsageFact


class UsageQueryError(ValueError):
    """A usage question that cannot be asked (bad period, incompatible options)."""


# -- reading ---------------------------------------------------------------------------


def rollups(tenant_id: str, prefix: str) -> Iterator[tuple[RollupKey, Counters]]:
    """The rollup items of ``tenant_id`` whose sort key starts with ``prefix``."""
    from functions.common.models import Rollup

    condition = Rollup.sk.startswith(prefix) if prefix else None
    for item in Rollup.query(tenant_id, condition, consistent_read=True):
        counters = Counters(**{m: int(getattr(item, m) or 0) for m in MEASURES})
        yield RollupKey(item.tenant_id, item.sk), counters


def events(tenant_id: str, start_ms: int, end_ms: int) -> Iterator[dict[str, Any]]:
    """Raw usage events of ``tenant_id`` with ``start_ms <= ts < end_ms``."""
    from functions.common.models import UsageEvent

    condition = UsageEvent.ts.between(start_ms, end_ms - 1)
    for event in UsageEvent.by_tenant.query(tenant_id, condition):
        yield event.attribute_values


# -- usage rows ------------------------------------------------------------------------

_GROUP_FIELD = {"key": "key_id", "principal": "principal", "model": "model"}


def check_period(granularity: str, period: str | None) -> None:
    if granularity not in logic.GRANULARITIES:
        raise UsageQueryError(f"granularity must be one of {', '.join(logic.GRANULARITIES)}")
    if period is None:
        return
    try:
        given = logic.granularity_of(period)
    except ValueError as exc:
        raise UsageQueryError(str(exc)) from None
    if logic.GRANULARITIES.index(given) < logic.GRANULARITIES.index(granularity):
        raise UsageQueryError(
            f"a {given} period ({period}) cannot be shown by {granularity}; "
            f"use --granularity {given} or finer"
        )


def usage_rows(
    tenant_id: str,
    *,
    granularity: str = "month",
    period: str | None = None,
    dimension: str = "all",
    value: str | None = None,
) -> list[dict[str, Any]]:
    """Rows of one dimension (``all``, ``key``, ``principal``, ``model`` or ``test``), for
    every period of ``granularity`` inside ``period`` (all periods if None), oldest first.
    ``value`` keeps one key / principal / model."""
    check_period(granularity, period)
    if dimension not in ("all", "test", *_GROUP_FIELD):
        raise UsageQueryError(f"cannot group usage by {dimension!r}")
    rows = []
    for key, counters in rollups(tenant_id, f"{granularity}#{period or ''}"):
        _, row_period, row_dim, row_value = key.parts
        if row_dim != dimension or (value is not None and row_value != value):
            continue
        row: dict[str, Any] = {
            "tenant_id": tenant_id,
            "granularity": granularity,
            "period": row_period,
            "environment": "test" if dimension == "test" else "live",
        }
        if dimension in _GROUP_FIELD:
            row[_GROUP_FIELD[dimension]] = row_value
            if dimension == "key":
                row.pop("environment")  # a key's own environment; not known from the item
        row.update(
            requests=counters.requests,
            errors=counters.errors,
            prompt_tokens=counters.prompt_tokens,
            completion_tokens=counters.completion_tokens,
            cost_usd=logic.usd(counters.cost_micros),
            cost_micros=counters.cost_micros,
            estimated=counters.estimated,
            # pricing (issue 14): parts of the prompt / completion tokens
            cached_tokens=counters.cached_tokens,
            reasoning_tokens=counters.reasoning_tokens,
        )
        rows.append(row)
    rows.sort(key=lambda r: (r["period"], str(r.get(_GROUP_FIELD.get(dimension, ""), ""))))
    return rows


# -- reconciliation --------------------------------------------------------------------


@dataclass
class Reconciliation:
    tenant_id: str
    period: str
    events: int = 0
    malformed_events: int = 0
    items: int = 0
    drift: int = 0
    mismatches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.drift == 0 and self.malformed_events == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "period": self.period,
            "events": self.events,
            "malformed_events": self.malformed_events,
            "items_compared": self.items,
            "drift": self.drift,
            "ok": self.ok,
            "mismatches": self.mismatches,
        }


def expected_rollups(
    raw: Iterator[dict[str, Any]] | list[dict[str, Any]], granularity: str
) -> tuple[dict[RollupKey, Counters], int, int]:
    """(rollups the events add up to at ``granularity`` and finer, events, malformed)."""
    facts, malformed = [], 0
    for item in raw:
        try:
            facts.append(UsageFact.from_item(item))
        except MalformedEvent:
            malformed += 1
    wanted = set(logic.finer_or_equal(granularity))
    expected = {k: c for k, c in logic.aggregate(facts).items() if k.parts[0] in wanted}
    return expected, len(facts) + malformed, malformed


def compare(
    tenant_id: str,
    period: str,
    expected: dict[RollupKey, Counters],
    actual: dict[RollupKey, Counters],
) -> Reconciliation:
    result = Reconciliation(tenant_id, period)
    for key in sorted(set(expected) | set(actual)):
        want, have = expected.get(key, Counters()), actual.get(key, Counters())
        result.items += 1
        for measure in MEASURES:
            e, a = getattr(want, measure), getattr(have, measure)
            if e != a:
                result.drift += abs(e - a)
                result.mismatches.append(
                    {"sk": key.sk, "measure": measure, "expected": e, "actual": a}
                )
    return result


def reconcile(tenant_id: str, period: str) -> Reconciliation:
    """Compare the rollups of ``period`` (``YYYY-MM``, ``YYYY-MM-DD`` or ``YYYY-MM-DDTHH``)
    with the raw usage events of the same period."""
    try:
        granularity = logic.granularity_of(period)
        start, end = logic.period_bounds_ms(period)
    except ValueError as exc:
        raise UsageQueryError(str(exc)) from None
    expected, count, malformed = expected_rollups(events(tenant_id, start, end), granularity)
    actual: dict[RollupKey, Counters] = {}
    for g in logic.finer_or_equal(granularity):
        actual.update(rollups(tenant_id, f"{g}#{period}"))
    result = compare(tenant_id, period, expected, actual)
    result.events, result.malformed_events = count, malformed
    return result
