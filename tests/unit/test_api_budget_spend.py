"""Spend budgets in the reserve -> settle path (functions/api/budget.py): the conditional
expressions that hold tokens and micro-dollars together in one write per item, what the money
left buys, and the refusals that name the spend budget. No I/O (an in-memory store)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from functions.api.budget import (
    Budget,
    Reservation,
    Window,
    affordable_completion,
    key_reserve_request,
    key_settle_request,
    shard_reserve_request,
    shard_settle_request,
)
from functions.api.errors import InsufficientQuota
from functions.api.store import ConditionFailed
from functions.pricing.money import Price, worst_case_micros
from tests.unit.test_api_budget import FakeStore, shard, values

# 1 micro-dollar per prompt token, 2 per completion token (per 1M: 1_000_000 / 2_000_000)
PRICE = Price(1_000_000, 2_000_000)


def _window(**over: Any) -> Window:
    base: dict[str, Any] = {"month": "2026-11", "tenant_limit": None, "key_budget": None}
    return Window(**{**base, **over})


def _reserve(store: FakeStore, window: Window, *, prompt: int = 3, max_tokens: int = 10,
             flexible: bool = False, price: Price | None = PRICE) -> Reservation:  # fmt: skip
    return Budget(store).reserve(  # type: ignore[arg-type]
        tenant_id="t", key_id="k", window=window, prompt_tokens=prompt, max_tokens=max_tokens,
        flexible=flexible, price=price,
    )  # fmt: skip


def test_shard_reserve_holds_tokens_and_spend_in_one_conditional_write() -> None:
    req = shard_reserve_request("t", _window(tenant_limit=100, spend_alloc=500, shard=3), 13, 23)
    assert req["UpdateExpression"] == "SET #tk = #tk + :r, #sp = if_not_exists(#sp, :z) + :s"
    assert req["ConditionExpression"] == (
        "#mo = :month AND #ta = :ta AND #tk <= :tmax AND #sa = :sa AND #sp <= :smax"
    )
    assert values(req) == {":month": "2026-11", ":r": "13", ":ta": "100", ":tmax": "87",
                           ":sa": "500", ":smax": "477", ":s": "23", ":z": "0"}  # fmt: skip
    assert req["ExpressionAttributeNames"] == {"#mo": "mo", "#tk": "tk", "#ta": "ta",
                                               "#sa": "sa", "#sp": "sp"}  # fmt: skip


def test_shard_reserve_without_a_spend_limit_pins_it_absent_and_still_counts_spend() -> None:
    req = shard_reserve_request("t", _window(), 13, 23)
    assert "attribute_not_exists(#sa)" in req["ConditionExpression"]
    assert "#sp <= :smax" not in req["ConditionExpression"]
    assert "#sp = if_not_exists(#sp, :z) + :s" in req["UpdateExpression"]


def test_test_shards_count_no_spend() -> None:
    req = shard_reserve_request("t", _window(environment="test", tenant_limit=100), 13, 23)
    assert "sp" not in req["ExpressionAttributeNames"].values()
    assert "sa" not in req["ExpressionAttributeNames"].values()
    res = Reservation("t", "k", "2026-11", 13, False, 10, "test", spend=23)
    assert "#sp" not in shard_settle_request(res, -3, -5)["UpdateExpression"]


def test_key_reserve_with_both_budgets_pins_both() -> None:
    window = _window(key_budget=40, key_spend_budget=100, parent_key_id="p")
    req = key_reserve_request("k", window, 13, 23)
    assert req["Key"] == {"pk": {"S": "k#p"}, "sk": {"S": "c#k"}}
    assert req["UpdateExpression"] == "SET #u = #u + :r, #su = #su + :s"
    assert req["ConditionExpression"] == "#b = :b AND #u <= :kmax AND #sb = :sb AND #su <= :smax"
    assert values(req) == {":r": "13", ":b": "40", ":kmax": "27", ":s": "23", ":sb": "100",
                           ":smax": "77"}  # fmt: skip


def test_key_reserve_with_a_spend_budget_only_leaves_tokens_alone() -> None:
    req = key_reserve_request("k", _window(key_spend_budget=100, parent_key_id="p"), 13, 23)
    assert req["UpdateExpression"] == "SET #su = #su + :s"
    assert req["ConditionExpression"] == "#sb = :sb AND #su <= :smax"
    assert set(req["ExpressionAttributeNames"]) == {"#su", "#sb"}


def test_settle_requests_move_tokens_and_spend_together() -> None:
    res = Reservation("t", "k", "2026-11", 13, False, 10, "live", 1, "p", None, 23, True)
    shard_req = shard_settle_request(res, -7, -11)
    assert shard_req["UpdateExpression"] == "SET #tk = #tk + :d, #sp = if_not_exists(#sp, :z) + :sd"
    assert shard_req["ConditionExpression"] == "#mo = :month"
    assert values(shard_req)[":sd"] == "-11"
    key_req = key_settle_request(res, -7, -11)  # only the spend budget is on this key
    assert key_req["UpdateExpression"] == "SET #su = #su + :sd"
    assert key_req["ConditionExpression"] == "attribute_exists(#su)"


def test_reservation_holds_the_worst_case_and_settles_to_the_cost() -> None:
    store = FakeStore()
    window = _window(spend_alloc=1000, key_spend_budget=100, parent_key_id="p")
    res = _reserve(store, window)
    assert res.spend == worst_case_micros(PRICE, 3, 10) == 23
    assert res.key_spend_budgeted and not res.key_budgeted
    assert len(store.requests) == 2  # key item + shard: no extra round trip for money
    Budget(store).settle(res, 8, 13)  # type: ignore[arg-type]  # 3 prompt + 5 completion
    key_req, shard_req = store.requests[3], store.requests[2]
    assert values(shard_req)[":d"] == "-5" and values(shard_req)[":sd"] == "-10"
    assert values(key_req) == {":sd": "-10"}
    assert len(store.requests) == 4  # settle: shard + key item


def test_release_gives_back_the_spend_too() -> None:
    store = FakeStore()
    res = _reserve(store, _window(spend_alloc=1000))
    Budget(store).settle(res, 0)  # type: ignore[arg-type]
    assert values(store.requests[-1])[":sd"] == "-23"


def test_a_settle_without_a_cost_keeps_the_spend_reserved() -> None:
    store = FakeStore()
    res = _reserve(store, _window(spend_alloc=1000))
    Budget(store).settle(res, 8)  # type: ignore[arg-type]
    assert ":sd" not in values(store.requests[-1])  # over, never under


def test_a_fixed_max_tokens_that_the_key_cannot_afford_is_refused_naming_the_spend_budget() -> None:
    old = {"pk": "k#p", "sk": "c#k", "s": "active", "sb": 100, "su": 90}
    store = FakeStore(ConditionFailed(old))
    with pytest.raises(InsufficientQuota) as refused:
        _reserve(store, _window(key_spend_budget=100, parent_key_id="p"))
    message = refused.value.message
    assert "delegated key's spend budget" in message
    assert "USD 0.000010 left" in message and "up to USD 0.000023" in message
    assert refused.value.retry_after == 86_400
    assert len(store.requests) == 1  # never reached the shard


def test_the_tenant_spend_refusal_names_the_monthly_spend_budget() -> None:
    store = FakeStore(ConditionFailed(shard(ta=None, sa=100, sp=90)))
    with pytest.raises(InsufficientQuota) as refused:
        _reserve(store, _window(spend_alloc=100))
    assert "tenant's monthly spend budget" in refused.value.message
    assert 0 < refused.value.retry_after <= 31 * 86_400


def test_without_max_tokens_the_allowance_shrinks_to_what_the_money_left_buys() -> None:
    store = FakeStore(ConditionFailed(shard(ta=None, sa=100, sp=90)))
    res = _reserve(store, _window(spend_alloc=100), max_tokens=1024, flexible=True)
    # 10 micro-dollars left: 3 prompt tokens (3) + 3 completion tokens (6) = 9 <= 10
    assert res.max_tokens == 3 and res.spend == 9
    assert values(store.requests[-1])[":smax"] == "91"


def test_tokens_and_spend_both_short_the_smaller_allowance_wins() -> None:
    store = FakeStore(ConditionFailed(shard(ta=20, tk=10, sa=100, sp=95)))
    res = _reserve(store, _window(tenant_limit=20, spend_alloc=100), max_tokens=1024,
                   flexible=True)  # fmt: skip
    assert res.max_tokens == 1  # tokens would allow 7, money (5 left) buys 1


def test_a_free_model_reserves_no_money() -> None:
    res = _reserve(FakeStore(), _window(spend_alloc=0), price=Price(0, 0))
    assert res.spend == 0


def test_affordable_completion_is_the_largest_that_fits() -> None:
    seed = random.randrange(2**32)
    print("seed", seed)
    rng = random.Random(seed)
    for _ in range(2000):
        price = Price(rng.randrange(0, 5_000_000), rng.randrange(0, 20_000_000),
                      rng.choice([None, rng.randrange(0, 5_000_000)]),
                      rng.choice([None, rng.randrange(0, 30_000_000)]))  # fmt: skip
        prompt, left, wanted = rng.randrange(0, 500), rng.randrange(0, 5000), rng.randrange(1, 4096)
        c = affordable_completion(price, prompt, left, wanted)
        assert 0 <= c <= wanted
        if c > 0:
            assert worst_case_micros(price, prompt, c) <= left, (seed, price, prompt, left, c)
        if c < wanted and worst_case_micros(price, prompt, 0) <= left:
            assert worst_case_micros(price, prompt, c + 1) > left, (seed, price, prompt, left)


def test_a_thinly_spread_remainder_is_lent_whole() -> None:
    """No shard has a request's worth left, together they have: the richest gives all."""
    from functions.gate import admission as ad

    month = "2026-11"
    shards = [shard(ix=0, sa=133, sp=133), shard(ix=1, sa=3, sp=0), shard(ix=2, sa=2, sp=0),
              shard(ix=3, sa=2, sp=0, mo="2000-01")]  # fmt: skip
    found = ad.pick_donor(shards, "sp", 7, month, exclude=0)
    assert found is not None and found[0]["ix"] == 1 and found[1] == 3
    found = ad.pick_donor(shards, "sp", 2, month, exclude=0)
    assert found is not None and found[1] == 2  # enough: at least what is needed
    assert ad.pick_donor([*shards[:1], shard(ix=1, sa=3, sp=3)], "sp", 7, month, 0) is None
