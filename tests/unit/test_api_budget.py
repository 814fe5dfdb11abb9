"""The budget's expressions and its retry/refusal logic, with an in-memory store (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from functions.api.budget import (
    Budget,
    Reservation,
    Window,
    key_reserve_request,
    key_settle_request,
    shard_reserve_request,
    shard_settle_request,
)
from functions.api.errors import InsufficientQuota, ServiceUnavailable, TenantUnavailable
from functions.api.store import ConditionFailed
from functions.api.usage import cost_micros


class FakeStore:
    """Answers each update with the next scripted outcome (None: success)."""

    class tables:
        gate = "tollgate-gate"

    def __init__(self, *outcomes: BaseException | None) -> None:
        self.outcomes = list(outcomes)
        self.requests: list[dict[str, Any]] = []
        self.once: list[bool] = []

    def update_gate(self, request: dict[str, Any], *, once: bool = False) -> None:
        self.requests.append(request)
        self.once.append(once)
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome


def shard(mo: str = "2026-11", ta: int | None = 100, tk: int = 0, **more: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"pk": "t#t#live#0", "sk": "s", "st": "active", "mo": mo, "tk": tk,
                            "ns": 1, "ix": 0, **more}  # fmt: skip
    if ta is not None:
        item["ta"] = ta
    return item


def key_item(b: int, u: int) -> dict[str, Any]:
    return {"pk": "k#p", "sk": "c#k", "s": "active", "b": b, "u": u}


def values(request: dict[str, Any]) -> dict[str, Any]:
    return {k: next(iter(v.values())) for k, v in request["ExpressionAttributeValues"].items()}


def test_reserve_requests_pin_limits_and_compare_with_a_precomputed_bound() -> None:
    window = Window("2026-11", 100, 40, "live", 2, "p")
    shard_req = shard_reserve_request("t", window, 13)
    assert shard_req["Key"] == {"pk": {"S": "t#t#live#2"}, "sk": {"S": "s"}}
    assert shard_req["ConditionExpression"] == (
        "#mo = :month AND #ta = :ta AND #tk <= :tmax AND attribute_not_exists(#sa)"
    )  # a live shard: no spend limit seen, none may have appeared since
    assert shard_req["UpdateExpression"] == "SET #tk = #tk + :r"
    assert values(shard_req) == {":month": "2026-11", ":r": "13", ":ta": "100", ":tmax": "87"}
    key_req = key_reserve_request("k", window, 13)
    assert key_req["Key"] == {"pk": {"S": "k#p"}, "sk": {"S": "c#k"}}  # the parent's partition
    assert key_req["ConditionExpression"] == "#b = :b AND #u <= :kmax"
    assert values(key_req) == {":r": "13", ":b": "40", ":kmax": "27"}
    for req in (shard_req, key_req):
        assert req["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"


def test_reserve_request_without_a_tenant_limit_requires_it_absent() -> None:
    req = shard_reserve_request("t", Window("2026-11", None, 5), 5)
    assert "attribute_not_exists(#ta)" in req["ConditionExpression"]
    assert ":tmax" not in req["ExpressionAttributeValues"]  # unused values are an error


def test_settle_requests_the_shard_part_is_conditional_on_the_month() -> None:
    res = Reservation("t", "k", "2026-11", 13, True, 10, "test", 1, "p")
    req = shard_settle_request(res, -7)
    assert req["Key"] == {"pk": {"S": "t#t#test#1"}, "sk": {"S": "s"}}
    assert req["ConditionExpression"] == "#mo = :month" and values(req)[":d"] == "-7"
    assert key_settle_request(res, -7)["ConditionExpression"] == "attribute_exists(#u)"


def _reserve(store: FakeStore, window: Window, *, prompt: int = 3, max_tokens: int = 10,
             flexible: bool = False) -> Reservation:  # fmt: skip
    return Budget(store).reserve(  # type: ignore[arg-type]
        tenant_id="t", key_id="k", window=window, prompt_tokens=prompt, max_tokens=max_tokens,
        flexible=flexible,
    )  # fmt: skip


def test_unlimited_reserves_nothing() -> None:
    store = FakeStore()
    res = _reserve(store, Window("2026-11", None, None))
    assert res.amount == 0 and store.requests == []


def test_stale_view_is_retried_with_the_items_values() -> None:
    store = FakeStore(ConditionFailed(shard(mo="2026-12", ta=500, tk=10)))
    res = _reserve(store, Window("2026-11", 100, None))
    assert res.amount == 13 and res.month == "2026-12"
    assert values(store.requests[1])[":ta"] == "500"


def test_refusal_names_the_budget_that_is_short_and_always_says_when_to_retry() -> None:
    with pytest.raises(InsufficientQuota) as tenant:
        _reserve(FakeStore(ConditionFailed(shard(ta=100, tk=95))), Window("2026-11", 100, None))
    assert "monthly" in tenant.value.message and tenant.value.retry_after > 0
    assert "5 left" in tenant.value.message
    store = FakeStore(ConditionFailed(key_item(b=20, u=15)))
    with pytest.raises(InsufficientQuota) as key:
        _reserve(store, Window("2026-11", None, 20))
    # issue 11 finding 6: a 429 always carries Retry-After (a key budget does not refill)
    assert "delegated key" in key.value.message and key.value.retry_after == 86_400
    assert "5 left" in key.value.message


def test_a_failed_shard_reservation_gives_the_key_reservation_back() -> None:
    store = FakeStore(None, ConditionFailed(shard(ta=100, tk=95)), None)
    with pytest.raises(InsufficientQuota):
        _reserve(store, Window("2026-11", 100, 40, parent_key_id="p"))
    assert [values(r).get(":d") for r in store.requests] == [None, None, "-13"]
    assert store.once == [False, False, True]  # a give-back is never blindly retried


def test_flexible_allowance_shrinks_to_what_is_left() -> None:
    store = FakeStore(ConditionFailed(shard(ta=100, tk=92)))
    res = _reserve(store, Window("2026-11", 100, None), max_tokens=1024, flexible=True)
    assert (res.max_tokens, res.amount) == (5, 8)


def test_a_missing_or_inactive_tenant_is_refused() -> None:
    with pytest.raises(TenantUnavailable):
        _reserve(FakeStore(ConditionFailed(None)), Window("2026-11", 100, None))
    with pytest.raises(TenantUnavailable):
        gone = shard() | {"st": "suspended"}
        _reserve(FakeStore(ConditionFailed(gone)), Window("2026-11", 100, None))


def test_gives_up_after_a_bounded_number_of_attempts() -> None:
    store = FakeStore(*[ConditionFailed(shard(ta=100 + i)) for i in range(10)])
    with pytest.raises(ServiceUnavailable):
        _reserve(store, Window("2026-11", 100, None))
    assert len(store.requests) == 6


def test_settle_skips_exact_reservations_and_survives_failures() -> None:
    res = Reservation("t", "k", "2026-11", 13, True, 10)
    store = FakeStore()
    Budget(store).settle(res, 13)  # type: ignore[arg-type]
    assert store.requests == []
    store = FakeStore(ConditionFailed(None), None)  # month rolled: the key part still settles
    Budget(store).settle(res, 6)  # type: ignore[arg-type]
    assert len(store.requests) == 2 and store.once == [True, True]
    store = FakeStore(ServiceUnavailable(), ServiceUnavailable())
    Budget(store).settle(res, 0)  # type: ignore[arg-type]  # logged, never raised


@pytest.mark.parametrize(
    ("prompt", "completion", "pp", "pc", "micros"),
    [(0, 0, 1000, 1000, 0), (1, 0, 500, 0, 1), (1, 0, 499, 0, 0), (3, 2, 1500, 2000, 9),
     (1000, 1000, 3000, 15000, 18000), (7, 4, 1500, 2000, 19)],
)  # fmt: skip
def test_cost_is_rounded_half_up_per_event(
    prompt: int, completion: int, pp: int, pc: int, micros: int
) -> None:
    assert cost_micros(prompt, completion, pp, pc) == micros


def test_flexible_request_outpaced_by_others_is_refused_not_failed() -> None:
    outcomes = [ConditionFailed(shard(ta=100, tk=80 + 3 * i)) for i in range(6)]
    store = FakeStore(*outcomes)
    with pytest.raises(InsufficientQuota):
        _reserve(store, Window("2026-11", 100, None), max_tokens=1024, flexible=True)
    assert [values(r)[":r"] for r in store.requests][:3] == ["1027", "20", "17"]
