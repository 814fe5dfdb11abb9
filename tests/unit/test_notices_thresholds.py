"""Which thresholds a month's totals have reached (level, exact integers), and the
emitter's bookkeeping: one put per notice, limits cached, failures answered False."""

from __future__ import annotations

from typing import Any

import pytest

from functions.notices.emitter import NoticeEmitter
from functions.notices.thresholds import (
    Crossing,
    Limits,
    month_total_period,
    notice_id,
    notice_sk,
    reached,
)


def totals(requests: int = 0, prompt: int = 0, completion: int = 0, cost: int = 0) -> Any:
    return {"requests": requests, "prompt_tokens": prompt, "completion_tokens": completion,
            "cost_micros": cost, "errors": 0}  # fmt: skip


def pcts(found: list[Crossing], metric: str) -> list[int]:
    return [c.threshold_pct for c in found if c.metric == metric]


def test_levels_are_exact_integers() -> None:
    limits = Limits(requests=10, tokens=1000, spend=3)
    assert reached("t", "2026-11", totals(requests=4), limits) == []
    assert pcts(reached("t", "2026-11", totals(requests=5), limits), "requests") == [50]
    assert pcts(reached("t", "2026-11", totals(requests=7), limits), "requests") == [50]
    assert pcts(reached("t", "2026-11", totals(requests=8), limits), "requests") == [50, 80]
    assert pcts(reached("t", "2026-11", totals(requests=10), limits), "requests") == [50, 80, 100]
    assert pcts(reached("t", "2026-11", totals(requests=99), limits), "requests") == [50, 80, 100]
    # tokens are prompt + completion; 80 % of 1000 is 800
    assert pcts(reached("t", "2026-11", totals(prompt=500, completion=299), limits), "tokens") == [
        50
    ]
    assert pcts(reached("t", "2026-11", totals(prompt=500, completion=300), limits), "tokens") == [
        50,
        80,
    ]
    # spend of 3 micro-dollars: 50 % is 1.5 -> 2 reaches it, 1 does not (no float rounding)
    assert pcts(reached("t", "2026-11", totals(cost=1), limits), "spend") == []
    assert pcts(reached("t", "2026-11", totals(cost=2), limits), "spend") == [50]
    assert pcts(reached("t", "2026-11", totals(cost=3), limits), "spend") == [50, 80, 100]


def test_unset_or_zero_limits_send_nothing() -> None:
    assert not Limits()
    assert not Limits(requests=0)
    assert reached("t", "2026-11", totals(requests=10**9, cost=10**12), Limits()) == []


def test_ids_and_keys_are_deterministic() -> None:
    (c,) = reached("acme", "2026-11", totals(requests=5), Limits(requests=10))
    assert c.sk == notice_sk("2026-11", "requests", 50) == "notice#2026-11#requests#050"
    assert c.id == notice_id("acme", "2026-11", "requests", 50) == "ntc_acme_2026-11_requests_50"
    assert (c.used, c.limit) == (5, 10)


@pytest.mark.parametrize(
    ("sk", "period"),
    [
        ("month#2026-11#all#-", "2026-11"),
        ("month#2026-11#key#k1", None),
        ("day#2026-11-01#all#-", None),
        ("month#2026-11#test#-", None),
        ("month#2026-11#line#a|b|c", None),
    ],
)
def test_only_the_month_total_is_watched(sk: str, period: str | None) -> None:
    assert month_total_period(sk) == period


class Writer:
    def __init__(self, fail: bool = False) -> None:
        self.existing: set[tuple[str, str]] = set()
        self.puts = 0
        self.fail = fail

    def put_notice(self, crossing: Crossing) -> bool:
        self.puts += 1
        if self.fail:
            raise RuntimeError("throttled")
        key = (crossing.tenant_id, crossing.sk)
        if key in self.existing:
            return False
        self.existing.add(key)
        return True


class Source:
    def __init__(self, limits: Limits) -> None:
        self.value, self.reads = limits, 0

    def limits(self, tenant_id: str) -> Limits:
        self.reads += 1
        return self.value


def test_the_emitter_puts_each_notice_once_and_caches_limits() -> None:
    writer, source = Writer(), Source(Limits(requests=10))
    clock = [0.0]
    emitter = NoticeEmitter(writer, source, clock=lambda: clock[0])
    assert emitter.observe("acme", "month#2026-11#all#-", totals(requests=6))
    assert emitter.observe("acme", "month#2026-11#all#-", totals(requests=9))
    assert emitter.observe("acme", "month#2026-11#all#-", totals(requests=10))
    assert emitter.observe("acme", "month#2026-11#all#-", totals(requests=12))
    assert [c.threshold_pct for c in emitter.emitted] == [50, 80, 100]
    assert writer.puts == 3  # thresholds known to be emitted are not put again
    assert source.reads == 1
    clock[0] += 61
    emitter.observe("acme", "month#2026-11#all#-", totals(requests=12))
    assert source.reads == 2  # limits are read again after a minute
    # another container (empty cache) tries, and the store refuses: still 3 notices
    other = NoticeEmitter(writer, Source(Limits(requests=10)))
    assert other.observe("acme", "month#2026-11#all#-", totals(requests=12))
    assert other.emitted == [] and len(writer.existing) == 3


def test_a_failed_put_answers_false_and_is_not_remembered() -> None:
    writer = Writer(fail=True)
    emitter = NoticeEmitter(writer, Source(Limits(requests=10)))
    assert not emitter.observe("acme", "month#2026-11#all#-", totals(requests=10))
    writer.fail = False
    assert emitter.observe("acme", "month#2026-11#all#-", totals(requests=10))
    assert len(emitter.emitted) == 3


def test_other_items_cost_nothing() -> None:
    writer, source = Writer(), Source(Limits(requests=1))
    emitter = NoticeEmitter(writer, source)
    assert emitter.observe("acme", "month#2026-11#key#k", totals(requests=5))
    assert emitter.observe("acme", "hour#2026-11-01T00#all#-", totals(requests=5))
    assert writer.puts == source.reads == 0
