"""Exact spend budgets (docs/billing.md, "Spend budgets"): a delegated key's spend budget and a
tenant's monthly live spend, reserved at the worst case and settled at the cost, in the same
conditional writes as tokens.

Against moto's server (serialised: conditional writes are atomic per item, as in DynamoDB,
tests/conftest.py), with 32 concurrent clients, 5 rounds in a row, as the token budgets are
tested (tests/integration/test_api_budget.py).

Prices here: 1 micro-dollar per prompt token, 2 per completion token. "hello world" is 3
prompt tokens (upper bound 3) and its echo 3 completion tokens; with ``max_tokens=2`` the
worst case is 3 + 2 x 2 = 7 micro-dollars and the call costs exactly that.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from functions.api import handler as api
from functions.authorizer import handler as authorizer
from functions.common.models import Plan
from functions.gate import items as it
from tests import gate_support
from tests.integration.api_events import (
    RoundTrips,
    Spy,
    chat,
    chat_body,
    events_table,
    fresh_api,
    install,
    make_key,
    make_plan,
    make_secret,
    make_tenant,
    tenant_item,
    through_gate,
    who_for,
)

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

THREADS = 32
ROUNDS = 5
HELLO = "hello world"
COST = 7  # HELLO with max_tokens=2: worst case == cost


@pytest.fixture(autouse=True)
def tables(dynamodb: Any) -> Iterator[Any]:
    fresh_api()
    authorizer._store = None
    yield dynamodb
    api.reset()
    authorizer._store = None


def _plan(spend: int | None = None, shards: int = 1, name: str = "metered") -> Plan:
    return make_plan(
        name,
        price_prompt_micros_per_1k=1000,
        price_completion_micros_per_1k=2000,
        spend_per_month_micros=spend,
        counter_shards=shards,
    )


def _tenant(tenant_id: str = "acme", spend: int | None = None, shards: int = 1) -> None:
    make_tenant(tenant_id, _plan(spend, shards, name=f"metered-{tenant_id}"))


def _key_item(tenant_id: str, key_id: str) -> dict[str, Any]:
    return dict(tenant_item(None, tenant_id)["gate"][key_id])


# -- one request at a time -----------------------------------------------------------------
def test_a_delegated_key_stops_exactly_at_its_spend_budget(tables: Any) -> None:
    _tenant()
    child = make_key("acme", parent=make_key("acme"), spend_budget=10 * COST)
    who = who_for("acme", child)
    assert who.spend_budget == "70"
    for _ in range(10):
        assert chat(who, HELLO, max_tokens=2).status == 200
    reply = chat(who, HELLO, max_tokens=2)
    assert reply.status == 429 and reply.error["code"] == "insufficient_quota"
    assert "delegated key's spend budget" in reply.error["message"]
    assert "USD 0.000000 left" in reply.error["message"]
    assert reply.headers["retry-after"] == "86400"
    assert _key_item("acme", child)[it.SPENT] == 70
    assert tenant_item(tables)["mspend"] == 70  # the live month counts it too (no limit)
    costs = [e["cost_micros"] for e in events_table(tables) if e["status"] == "ok"]
    assert costs == [COST] * 10


def test_spend_adds_no_round_trip(tables: Any) -> None:
    _tenant(spend=10_000)
    child = make_key("acme", parent=make_key("acme"), budget=1000, spend_budget=1000)
    who = who_for("acme", child)
    chat(who, "warm up the plan cache", max_tokens=1)
    before = _key_item("acme", child)
    with RoundTrips() as trips:
        assert chat(who, HELLO, max_tokens=10).status == 200  # reserves 23, costs 9
        # reserve (key item, shard), marker, event, settle (shard, key item), marker gone
        assert trips.calls == [
            "UpdateItem", "UpdateItem", "PutItem", "PutItem", "UpdateItem", "UpdateItem",
            "DeleteItem",
        ]  # fmt: skip
    item = _key_item("acme", child)
    assert (item[it.USED] - before[it.USED], item[it.SPENT] - before[it.SPENT]) == (6, 9)


def test_a_fixed_max_tokens_the_budget_cannot_cover_never_reaches_the_model(tables: Any) -> None:
    _tenant()
    child = make_key("acme", parent=make_key("acme"), spend_budget=20)
    who = who_for("acme", child)
    spy = install("echo", Spy())
    reply = chat(who, HELLO, max_tokens=10)  # worst case 3 + 20 = 23 > 20
    assert reply.status == 429
    assert "spend budget" in reply.error["message"]
    assert "USD 0.000020 left" in reply.error["message"]
    assert "up to USD 0.000023" in reply.error["message"]
    assert spy.calls == []
    assert _key_item("acme", child)[it.SPENT] == 0
    # no max_tokens: the allowance shrinks to what the money left buys ((20 - 3) // 2 = 8)
    reply = chat(who, HELLO)
    assert reply.status == 200, reply.text
    assert spy.calls[-1].max_tokens == 8
    assert _key_item("acme", child)[it.SPENT] == 9  # settled at the cost, not the reservation


def test_the_authorizer_refuses_a_key_with_no_money_left(tables: Any) -> None:
    _tenant()
    parent = make_key("acme")
    child = make_key("acme", parent=parent, spend_budget=2 * COST)
    secret = make_secret("acme", child, parent=parent)
    body = chat_body(HELLO, max_tokens=2)
    assert [through_gate(secret, "POST", "/v1/chat/completions", body).status
            for _ in range(2)] == [200, 200]  # fmt: skip
    refused = through_gate(secret, "POST", "/v1/chat/completions", body)
    assert refused.status == 429
    assert "spend budget" in refused.error["message"]
    assert _key_item("acme", child)[it.SPENT] == 2 * COST


def test_tenant_monthly_spend_across_4_shards_borrows_and_stops_exactly(tables: Any) -> None:
    _tenant(spend=20 * COST, shards=4)
    shards = gate_support.view("acme")["shards"]
    assert sorted(int(s[it.SPEND_ALLOC]) for s in shards) == [35, 35, 35, 35]
    assert {int(s[it.SPEND_LIMIT]) for s in shards} == {140}
    who = who_for("acme", make_key("acme"), shard="0")  # every request on shard 0: it borrows
    statuses = [chat(who, HELLO, max_tokens=2).status for _ in range(21)]
    assert statuses == [200] * 20 + [429]
    assert tenant_item(tables)["mspend"] == 140
    shards = gate_support.view("acme")["shards"]
    assert sum(int(s[it.SPEND_ALLOC]) for s in shards) == 140  # moved, never created
    [zero] = [s for s in shards if int(s[it.INDEX]) == 0]
    assert int(zero[it.SPEND]) == 140
    last = chat(who, HELLO, max_tokens=2)
    assert "tenant's monthly spend budget" in last.error["message"]


def test_test_keys_never_count_against_the_tenants_spend(tables: Any) -> None:
    _tenant(spend=2 * COST)
    test_key = make_key("acme")
    secret = make_secret("acme", test_key, environment="test")
    body = chat_body(HELLO, max_tokens=2)
    for _ in range(5):  # 35 micro-dollars of test traffic, more than the live budget
        assert through_gate(secret, "POST", "/v1/chat/completions", body).status == 200
    assert tenant_item(tables)["mspend"] == 0
    test_shards = gate_support.view("acme", env="test")["shards"]
    assert all(it.SPEND not in s and it.SPEND_ALLOC not in s for s in test_shards)
    live = make_secret("acme", make_key("acme"))
    statuses = [through_gate(live, "POST", "/v1/chat/completions", body).status for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert tenant_item(tables)["mspend"] == 2 * COST


def test_a_new_month_starts_with_no_spend(tables: Any) -> None:
    _tenant(spend=2 * COST)
    gate_support.set_shard("acme", mo="2001-01", sp=2 * COST, sa=0)  # last month: all spent
    who = who_for("acme", make_key("acme"), month=it.month_window())
    assert chat(who, HELLO, max_tokens=2).status == 200
    shard = gate_support.view("acme")["shards"][0]
    assert shard[it.MONTH] == it.month_window()
    assert (int(shard[it.SPEND]), int(shard[it.SPEND_ALLOC])) == (COST, 2 * COST)


def test_a_settle_after_a_rollover_leaves_the_new_months_spend_alone(tables: Any) -> None:
    _tenant(spend=1000)
    child = make_key("acme", parent=make_key("acme"), spend_budget=500)

    def roll_over() -> None:
        gate_support.set_shard("acme", mo="2999-01", tk=0, sp=0)

    install("echo", Spy(during=roll_over))
    assert chat(who_for("acme", child), HELLO, max_tokens=50).status == 200
    item = tenant_item(tables)
    assert item["mo"] == "2999-01" and item["mspend"] == 0  # not 9 - 103
    assert _key_item("acme", child)[it.SPENT] == 9  # the key's budget is settled all the same


def test_a_failed_model_call_releases_the_spend(tables: Any) -> None:
    from functions.api.errors import ModelUnavailable

    _tenant(spend=1000)
    child = make_key("acme", parent=make_key("acme"), spend_budget=500)
    install("echo", Spy(error=ModelUnavailable()))
    assert chat(who_for("acme", child), HELLO, max_tokens=50).status == 503
    assert tenant_item(tables)["mspend"] == 0
    assert _key_item("acme", child)[it.SPENT] == 0


def test_the_sweep_settles_an_orphaned_spend_reservation(tables: Any) -> None:
    import time

    from functions.sweep.config import SweepSettings
    from functions.sweep.logic import sweep

    class Killed(BaseException):
        pass

    _tenant(spend=1000)
    child = make_key("acme", parent=make_key("acme"), spend_budget=500)
    install("echo", Spy(error=Killed()))
    with pytest.raises(Killed):
        chat(who_for("acme", child), HELLO, max_tokens=50)
    worst = 3 + 2 * 50
    assert tenant_item(tables)["mspend"] == worst
    assert _key_item("acme", child)[it.SPENT] == worst
    [marker] = [
        i for i in gate_support.scan_markers() if i[it.MARKER_KEY] == child
    ]  # the marker records the spend reservation
    assert (marker[it.MARKER_SPEND], marker[it.MARKER_KEY_SPEND_BUDGETED]) == (worst, 1)
    report = sweep(SweepSettings(lookback_minutes=120), now=int(time.time()) + 3600)
    assert (report.settled, report.events_written) == (1, 1)
    [ev] = events_table(tables)
    assert ev["estimated"] is True and ev["cost_micros"] == worst  # as the counters hold it
    assert tenant_item(tables)["mspend"] == worst
    assert _key_item("acme", child)[it.SPENT] == worst
    assert gate_support.scan_markers() == []


# -- 32 concurrent clients -----------------------------------------------------------------
def _clients(send: Callable[[], int], retry_503: bool = False) -> Counter[int]:
    """THREADS clients send requests until each is refused; the statuses they got.
    ``retry_503``: a client sends again after a 503 (as OpenAI clients do: a 503 asks for a
    retry; the gate answers one when it kept changing under a request), counted apart."""
    barrier = threading.Barrier(THREADS)
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def client() -> None:
        barrier.wait()
        while True:
            status = send()
            with lock:
                statuses[status] += 1
            if status != 200 and not (retry_503 and status == 503):
                return

    threads = [threading.Thread(target=client) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def _books(tables: Any, tenant_id: str) -> int:
    """Every admitted request has one event; the counter == the events' cost."""
    events = [e for e in events_table(tables) if e["tenant_id"] == tenant_id]
    assert len({e["request_id"] for e in events}) == len(events)
    good = [e for e in events if e["status"] == "ok"]
    assert tenant_item(tables, tenant_id)["mspend"] == sum(e["cost_micros"] for e in good)
    return len(good)


@pytest.mark.slow
def test_delegated_key_spend_budget_is_exact_under_32_clients(tables: Any) -> None:
    for round_ in range(ROUNDS):
        tenant_id = f"acme-{round_}"
        _tenant(tenant_id)
        child = make_key(tenant_id, parent=make_key(tenant_id), spend_budget=24 * COST)
        who = who_for(tenant_id, child)
        statuses = _clients(lambda who=who: chat(who, HELLO, max_tokens=2).status)
        assert statuses == {200: 24, 429: THREADS}, (round_, statuses)
        assert _key_item(tenant_id, child)[it.SPENT] == 24 * COST  # overshoot 0
        assert _books(tables, tenant_id) == 24


@pytest.mark.slow
def test_tenant_spend_over_4_shards_is_never_exceeded_under_32_clients(tables: Any) -> None:
    """The real authorizer in front, 4 counter shards lending spend allocation to each other:
    0 overshoot; what stays unspent is only what no single request could use."""
    limit = 40 * COST
    for round_ in range(ROUNDS):
        tenant_id = f"acme-{round_}"
        _tenant(tenant_id, spend=limit, shards=4)
        secret = make_secret(tenant_id, make_key(tenant_id))

        def send(secret: str = secret) -> int:
            body = chat_body(HELLO, max_tokens=2)
            return through_gate(secret, "POST", "/v1/chat/completions", body).status

        statuses = _clients(send, retry_503=True)
        assert statuses[429] == THREADS and set(statuses) <= {200, 429, 503}, (round_, statuses)
        while (status := send()) != 429:  # drain what is left, one at a time
            assert status in (200, 503), status
        spent = tenant_item(tables, tenant_id)["mspend"]
        assert spent <= limit, (round_, spent)  # overshoot 0
        # refused one at a time only when no shard and no lender has a request's worth left
        assert limit - spent < 4 * COST, (round_, spent)
        assert _books(tables, tenant_id) * COST == spent
        allocs = [int(s[it.SPEND_ALLOC]) for s in gate_support.view(tenant_id)["shards"]]
        assert sum(allocs) == limit


def test_the_items_every_request_writes_stay_within_one_write_unit(tables: Any) -> None:
    """Spend attributes on the key item and the shard, at their largest values and with the
    longest ids: each item stays <= 1 KB (one write unit per write)."""
    from functions.common.config import TableNames
    from tollgate.local.capacity import item_size

    tenant_id = "t" * 64
    _tenant(tenant_id, spend=10**15, shards=64)
    parent = make_key(tenant_id)
    child = make_key(tenant_id, parent=parent, budget=10**12, spend_budget=10**15)
    gate_support.set_key(tenant_id, child, u=10**12 - 1, su=10**15 - 1, c=10**6, w=10**8)
    gate_support.set_shard(tenant_id, index=63, sp=10**15 - 1, rq=10**9, tk=10**12)
    key = tables.get_item(TableName=TableNames().gate, Key=it.key_address(child, parent))["Item"]
    shard = tables.get_item(TableName=TableNames().gate,
                            Key=it.shard_address(tenant_id, "live", 63))["Item"]  # fmt: skip
    assert it.SPENT in key and it.SPEND_LIMIT in shard and it.SPEND_ALLOC in shard
    assert item_size(key) <= 1024 and item_size(shard) <= 1024, (item_size(key), item_size(shard))


def test_embeddings_spend_the_budget_too(tables: Any) -> None:
    from tests.integration.api_events import call, event

    _tenant()
    child = make_key("acme", parent=make_key("acme"), spend_budget=1000)
    who = who_for("acme", child)
    reply = call(event("POST", "/v1/embeddings", who,
                       body={"model": "tollgate-echo", "input": "hello world"}))  # fmt: skip
    assert reply.status == 200, reply.text
    prompt = reply.json["usage"]["prompt_tokens"]
    assert _key_item("acme", child)[it.SPENT] == prompt  # 1 micro-dollar per prompt token
    assert tenant_item(tables)["mspend"] == prompt
    [ev] = events_table(tables)
    assert ev["cost_micros"] == prompt
