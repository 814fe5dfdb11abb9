"""The gate at any scale (issue 12): test and live counted apart, counters spread over shards
still exact, and nothing a request touches grows with the keys a tenant has had."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
)

from functions.authorizer import handler
from functions.common import ddb, keyformat
from functions.common.routes import route_for
from functions.gate import items as it
from tests import gate_support
from tests.authorizer_events import request_event
from tests.integration import seed

CHAT = route_for("POST", "/v1/chat/completions")
assert CHAT


SEED = 20261206  # the authorizer picks a counter shard at random: seeded here, and printed


@pytest.fixture(autouse=True)
def fresh(dynamodb: Any) -> Any:
    import random

    random.seed(SEED)
    print(f"random seed {SEED}")
    ddb.reset_client()
    handler._store = None
    yield
    handler._store = None


def verdict(secret: str, now: float | None = None) -> str:
    event = APIGatewayAuthorizerRequestEvent(request_event(CHAT, {"x-api-key": secret}))
    decision, _ = handler.decide(event, time.time() if now is None else now)
    return "allow" if decision.admitted else decision.code


def hammer(secrets: list[str], clients: int, per_client: int, now: float) -> Counter[str]:
    results: Counter[str] = Counter()
    lock = threading.Lock()

    def client(i: int) -> None:
        for _ in range(per_client):
            got = verdict(secrets[i % len(secrets)], now)
            with lock:
                results[got] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_test_keys_exhaust_their_own_quota_and_never_a_live_keys() -> None:
    plan = seed.plan("pro", requests_per_month=5, test_requests_per_month=3)
    seed.tenant("acme", plan)
    _, live = seed.key("acme", env="live")
    _, test = seed.key("acme", env="test")
    assert [verdict(test) for _ in range(4)] == ["allow"] * 3 + ["quota_exceeded"]
    assert [verdict(live) for _ in range(6)] == ["allow"] * 5 + ["quota_exceeded"]
    assert gate_support.view("acme", "test")["mreq"] == 3
    assert gate_support.view("acme", "live")["mreq"] == 5


def test_test_tokens_are_counted_apart() -> None:
    seed.tenant("acme", seed.plan("pro", tokens_per_month=100, test_tokens_per_month=10))
    _, live = seed.key("acme", env="live")
    _, test = seed.key("acme", env="test")
    gate_support.set_shard("acme", "test", tk=10)  # the test keys spent their tokens
    assert verdict(test) == "insufficient_quota"
    assert verdict(live) == "allow"


@pytest.mark.parametrize("shards", [1, 4])
def test_sharded_monthly_quota_is_exact_under_32_clients(shards: int) -> None:
    """32 clients, 5 rounds, a monthly limit of 100 spread over ``shards`` counter shards:
    exactly 100 admitted each round (0 overshoot, and no early refusal: a spent shard borrows
    from the others)."""
    now = time.time() // 60 * 60 + 5
    for round_ in range(5):
        plan = seed.plan(f"p{round_}", requests_per_month=100, counter_shards=shards)
        seed.tenant(f"t{round_}", plan)
        secrets = [seed.key(f"t{round_}")[1] for _ in range(4)]
        results = hammer(secrets, 32, 5, now)  # 160 attempts
        assert results["allow"] == 100, (round_, results)
        assert results["quota_exceeded"] == 60, (round_, results)
        totals = gate_support.view(f"t{round_}")
        assert totals["mreq"] == 100 and len(totals["shards"]) == shards
        allocations = sum(int(s[it.REQUEST_ALLOC]) for s in totals["shards"])
        assert allocations <= 100  # lending never creates allocation


@pytest.mark.parametrize("seed", [1, 6, 7])
def test_a_plan_change_reallocates_exactly(seed: int) -> None:
    import random

    from functions.keys import KeyService

    random.seed(seed)  # which shard each request lands on; every seed must give the same

    svc = KeyService()
    svc.create_plan("small", requests_per_month=10, counter_shards=2, actor="t")
    svc.create_plan("large", requests_per_month=30, counter_shards=4, actor="t")
    svc.create_tenant("acme", plan="small", actor="t")
    secret = svc.create_key("acme", actor="t")["secret"]
    assert [verdict(secret) for _ in range(11)].count("allow") == 10
    svc.set_plan("acme", "large", actor="t")
    assert [verdict(secret) for _ in range(25)].count("allow") == 20
    shards = gate_support.view("acme")["shards"]
    assert len(shards) == 4 and sum(int(s[it.REQUEST_ALLOC]) for s in shards) == 30


def test_nothing_a_request_writes_grows_with_the_keys_of_the_tenant() -> None:
    """The items an authorization writes are the same size with 1 key as with 300 keys (half
    of them revoked), and creating a key never rewrites a tenant-wide item."""
    from functions.keys import KeyService

    svc = KeyService()
    svc.create_plan("pro", requests_per_month=10**6, requests_per_minute=10**4, actor="t")
    svc.create_tenant("acme", plan="pro", actor="t")
    first = svc.create_key("acme", actor="t")

    def written_sizes() -> tuple[int, int]:
        from functions.gate.admission import Facts
        from functions.gate.store import Admission, GateStore

        store = GateStore("tollgate-secrets", gate_support.table())
        facts = store.facts(keyformat.hash_secret(first["secret"]))
        assert isinstance(facts, Facts)
        result = store.admit(facts, CHAT, time.time())
        assert isinstance(result, Admission)
        return len(repr(result.key_item)), len(repr(result.shard_item))

    small = written_sizes()
    for i in range(300):
        k = svc.create_key("acme", principal=f"agent-{i}", actor="t")
        if i % 2:
            svc.revoke(key_id=k["key_id"], reason="done", actor="t")
    large = written_sizes()
    assert abs(large[0] - small[0]) <= 4 and abs(large[1] - small[1]) <= 4, (small, large)
