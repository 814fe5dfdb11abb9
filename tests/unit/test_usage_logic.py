"""The usage domain, pure: periods, rollup keys, test-environment separation, amounts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.usage import logic
from functions.usage.logic import Counters, MalformedEvent, RollupKey, UsageFact
from tests.usage_support import T0_MS, usage_item


def sks(fact: UsageFact) -> set[str]:
    return {k.sk for k in logic.rollup_keys(fact)}


def test_periods_are_utc_hour_day_month() -> None:
    assert logic.periods(T0_MS + 13 * 3600_000 + 59_999) == {
        "hour": "2026-11-01T13",
        "day": "2026-11-01",
        "month": "2026-11",
    }
    assert logic.periods(T0_MS - 1)["month"] == "2026-10"


def test_a_live_event_adds_to_every_dimension_and_one_line_item() -> None:
    fact = UsageFact.from_item(usage_item(0, key="k1", principal="agent-7", model="upstream:m1"))
    assert sks(fact) == {
        *(f"{g}#{p}#{d}" for g, p in (("hour", "2026-11-01T00"), ("day", "2026-11-01"),
                                     ("month", "2026-11"))
          for d in ("all#-", "key#k1", "principal#agent-7", "model#upstream:m1")),
        "month#2026-11#line#upstream%3Am1|agent-7|starter",
    }  # fmt: skip


def test_a_test_event_never_reaches_a_billable_dimension() -> None:
    fact = UsageFact.from_item(usage_item(0, key="k9", env="test"))
    keys = sks(fact)
    assert keys == {f"{g}#{p}#{d}" for g, p in (("hour", "2026-11-01T00"), ("day", "2026-11-01"),
                    ("month", "2026-11")) for d in ("key#k9", "test#-")}  # fmt: skip
    assert not {k.split("#")[2] for k in keys} & logic.BILLABLE_DIMENSIONS


def test_line_values_survive_separators_in_names() -> None:
    value = logic.line_value("a|b", "c#d%e", "p")
    assert value.count("|") == 2 and "#" not in value
    assert logic.parse_line_value(value) == ("a|b", "c#d%e", "p")
    assert RollupKey("t", f"month#2026-11#line#{value}").parts[3] == value


def test_errors_count_as_requests_and_errors() -> None:
    fact = UsageFact.from_item(usage_item(0, status="error"))
    assert Counters.of(fact).as_dict() == {
        "requests": 1, "errors": 1, "prompt_tokens": 0, "completion_tokens": 0, "cost_micros": 0,
        "estimated": 0, "cached_tokens": 0, "reasoning_tokens": 0,
    }  # fmt: skip


def test_estimated_events_are_counted_apart() -> None:
    fact = UsageFact.from_item({**usage_item(0, status="error"), "estimated": True})
    assert fact.estimated and Counters.of(fact).estimated == 1
    assert Counters.of(UsageFact.from_item(usage_item(0))).estimated == 0


@pytest.mark.parametrize(
    "change",
    [
        {"tenant_id": None},
        {"key_id": ""},
        {"ts": "soon"},
        {"prompt_tokens": -1},
        {"cost_micros": 1.5},
        {"completion_tokens": True},
        {"environment": 3},
    ],
)
def test_malformed_events_are_refused(change: dict) -> None:
    item = {**usage_item(0), **change}
    with pytest.raises(MalformedEvent):
        UsageFact.from_item(item)


def test_numbers_from_a_stream_image_are_decimals() -> None:
    from decimal import Decimal

    item = {**usage_item(0), "ts": Decimal(T0_MS), "prompt_tokens": Decimal(3)}
    assert UsageFact.from_item(item).prompt_tokens == 3


@pytest.mark.parametrize(
    ("period", "granularity", "hours"),
    [("2026-11", "month", 30 * 24), ("2026-12", "month", 31 * 24), ("2026-02", "month", 28 * 24),
     ("2026-11-05", "day", 24), ("2026-11-05T13", "hour", 1)],
)  # fmt: skip
def test_period_bounds(period: str, granularity: str, hours: int) -> None:
    assert logic.granularity_of(period) == granularity
    start, end = logic.period_bounds_ms(period)
    assert (end - start) == hours * 3600_000
    assert logic.periods(start)[granularity] == period
    assert logic.periods(end - 1)[granularity] == period
    assert logic.periods(end)[granularity] != period


@pytest.mark.parametrize("bad", ["2026", "2026-13", "2026-11-31", "2026-11-05T24", "11-2026", ""])
def test_bad_periods(bad: str) -> None:
    with pytest.raises(ValueError):
        logic.granularity_of(bad)


def test_previous_month() -> None:
    assert logic.previous_month(T0_MS / 1000) == "2026-10"
    assert logic.previous_month(1_767_225_600) == "2025-12"  # 2026-01-01


@given(st.integers(min_value=0, max_value=10**15))
def test_usd_is_exact(micros: int) -> None:
    text = logic.usd(micros)
    whole, frac = text.split(".")
    assert len(frac) == 6 and int(whole) * 1_000_000 + int(frac) == micros


@given(st.lists(st.tuples(st.integers(0, 3), st.booleans(), st.integers(0, 10**6)), max_size=40))
def test_aggregate_totals_equal_the_sum_of_events(spec: list[tuple[int, bool, int]]) -> None:
    items = [usage_item(i, key=f"k{k}", env="live" if live else "test", cost=cost)
             for i, (k, live, cost) in enumerate(spec)]  # fmt: skip
    rollups = logic.aggregate(UsageFact.from_item(i) for i in items)
    live_cost = sum(i["cost_micros"] for i in items if i["environment"] == "live")
    month_all = rollups.get(RollupKey("acme", "month#2026-11#all#-"), Counters())
    assert month_all.cost_micros == live_cost
    lines = [c for k, c in rollups.items() if k.parts[2] == "line"]
    assert sum(c.cost_micros for c in lines) == live_cost
    per_key = [c for k, c in rollups.items() if k.parts[:3] == ("month", "2026-11", "key")]
    assert sum(c.requests for c in per_key) == len(items)
