"""The budget's expressions and its retry/refusal logic, with an in-memory store (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from functions.api.budget import Budget, Reservation, Window, reserve_request, settle_request
from functions.api.errors import InsufficientQuota, ServiceUnavailable, TenantUnavailable
from functions.api.store import ConditionFailed
from functions.api.usage import cost_micros


class FakeStore:
    """Answers each update with the next scripted outcome (None: success)."""

    def __init__(self, *outcomes: BaseException | None) -> None:
        self.outcomes = list(outcomes)
        self.requests: list[dict[str, Any]] = []

    def update_tenant(self, request: dict[str, Any], *, once: bool = False) -> None:
        self.requests.append(request)
        self.once = once
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome


def old(mo: str = "2026-11", lim: int | None = 100, mtok: int = 0, **entry: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"tenant_id": "t", "status": "active", "mo": mo, "mtok": mtok,
                            "gate": {"k": {"s": "active", **entry}}}  # fmt: skip
    if lim is not None:
        item["lim_tmo"] = lim
    return item


def values(request: dict[str, Any]) -> dict[str, Any]:
    return {k: next(iter(v.values())) for k, v in request["ExpressionAttributeValues"].items()}


def test_reserve_request_pins_limits_and_compares_with_a_precomputed_bound() -> None:
    req = reserve_request("t", "k", Window("2026-11", 100, 40), 13)
    assert req["Key"] == {"tenant_id": {"S": "t"}}
    assert req["ConditionExpression"] == (
        "#mo = :month AND #lim = :lim AND (attribute_not_exists(#mtok) OR #mtok <= :tmax)"
        " AND #gate.#k.#b = :b AND #gate.#k.#u <= :kmax"
    )
    assert req["UpdateExpression"] == (
        "SET #mtok = if_not_exists(#mtok, :zero) + :r, #gate.#k.#u = #gate.#k.#u + :r"
    )
    assert values(req) == {":month": "2026-11", ":r": "13", ":zero": "0", ":lim": "100",
                           ":tmax": "87", ":b": "40", ":kmax": "27"}  # fmt: skip
    assert req["ExpressionAttributeNames"]["#k"] == "k"
    assert req["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"


def test_reserve_request_without_limits_requires_them_absent() -> None:
    req = reserve_request("t", "k", Window("2026-11", None, None), 5)
    assert "attribute_not_exists(#lim)" in req["ConditionExpression"]
    assert "attribute_not_exists(#gate.#k.#b)" in req["ConditionExpression"]
    assert "#u" not in req["ExpressionAttributeNames"]  # unused names are an error in DynamoDB


def test_settle_request_is_conditional_on_the_month_for_the_tenant_part() -> None:
    res = Reservation("t", "k", "2026-11", 13, True, 10)
    req = settle_request(res, -7)
    assert req is not None
    assert req["ConditionExpression"] == "#mo = :month AND attribute_exists(#gate.#k.#u)"
    assert values(req)[":d"] == "-7"
    key_only = settle_request(res, -7, tenant=False)
    assert key_only is not None and "#mo" not in key_only["ExpressionAttributeNames"]
    assert settle_request(Reservation("t", "k", "m", 0, False, 1), 5, tenant=False) is None


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
    store = FakeStore(ConditionFailed(old(mo="2026-12", lim=500, mtok=10)))
    res = _reserve(store, Window("2026-11", 100, None))
    assert res.amount == 13 and res.month == "2026-12"
    assert values(store.requests[1])[":lim"] == "500"


def test_refusal_names_the_budget_that_is_short() -> None:
    with pytest.raises(InsufficientQuota) as tenant:
        _reserve(FakeStore(ConditionFailed(old(lim=100, mtok=95))), Window("2026-11", 100, None))
    assert "monthly" in tenant.value.message and tenant.value.retry_after > 0
    store = FakeStore(ConditionFailed(old(lim=None, b=20, u=15)))
    with pytest.raises(InsufficientQuota) as key:
        _reserve(store, Window("2026-11", None, 20))
    assert "delegated key" in key.value.message and key.value.retry_after == 0


def test_flexible_allowance_shrinks_to_what_is_left() -> None:
    store = FakeStore(ConditionFailed(old(lim=100, mtok=92)))
    res = _reserve(store, Window("2026-11", 100, None), max_tokens=1024, flexible=True)
    assert (res.max_tokens, res.amount) == (5, 8)


def test_a_missing_or_inactive_tenant_is_refused() -> None:
    with pytest.raises(TenantUnavailable):
        _reserve(FakeStore(ConditionFailed(None)), Window("2026-11", 100, None))
    with pytest.raises(TenantUnavailable):
        gone = old() | {"status": "suspended"}
        _reserve(FakeStore(ConditionFailed(gone)), Window("2026-11", 100, None))


def test_gives_up_after_three_attempts() -> None:
    store = FakeStore(*[ConditionFailed(old(lim=100 + i)) for i in range(3)])
    with pytest.raises(ServiceUnavailable):
        _reserve(store, Window("2026-11", 100, None))
    assert len(store.requests) == 3


def test_settle_skips_exact_reservations_and_survives_failures() -> None:
    res = Reservation("t", "k", "2026-11", 13, True, 10)
    store = FakeStore()
    Budget(store).settle(res, 13)  # type: ignore[arg-type]
    assert store.requests == []
    store = FakeStore(ConditionFailed(None), None)  # month rolled: key part alone
    Budget(store).settle(res, 6)  # type: ignore[arg-type]
    assert len(store.requests) == 2 and "#mo" not in store.requests[1]["ExpressionAttributeNames"]
    store = FakeStore(ServiceUnavailable())
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
    store = FakeStore(*[ConditionFailed(old(lim=100, mtok=80 + 3 * i)) for i in range(3)])
    with pytest.raises(InsufficientQuota):
        _reserve(store, Window("2026-11", 100, None), max_tokens=1024, flexible=True)
    assert [values(r)[":r"] for r in store.requests] == ["1027", "20", "17"]
