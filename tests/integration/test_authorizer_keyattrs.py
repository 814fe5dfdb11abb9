"""The authorizer with keys bound to networks (``ac``), tagged keys and per-key limits
(``kr``), against DynamoDB (moto's server): issue 15 items 2 and 3.

What a refusal for the source costs (counted DynamoDB calls), that it counts nothing, every
shape of ``sourceIp``, tags in the context, and the per-key limit exact under 32 concurrent
clients the way tests/integration/test_authorizer.py checks the plan's.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
)

from functions.authorizer import handler
from functions.common import ddb
from functions.common.routes import route_for
from functions.gate import items as it
from functions.keys import KeyService
from tests import gate_support
from tests.authorizer_events import LambdaContext, request_event
from tests.integration import seed

CHAT = route_for("POST", "/v1/chat/completions")
assert CHAT
MISSING: Any = object()


@pytest.fixture(autouse=True)
def tables(dynamodb: Any) -> Iterator[Any]:
    ddb.reset_client()
    handler._store = None
    yield dynamodb
    handler._store = None


def event(secret: str, source: Any = "198.51.100.7") -> dict[str, Any]:
    raw = request_event(CHAT, {"x-api-key": secret})
    identity = raw["requestContext"]["identity"]
    if source is MISSING:
        del identity["sourceIp"]
    else:
        identity["sourceIp"] = source
    return raw


def call(secret: str, source: Any = "198.51.100.7") -> dict[str, Any]:
    return handler.handler(event(secret, source), LambdaContext())


def verdict(secret: str, source: Any = "198.51.100.7") -> str:
    out = call(secret, source)
    if out["policyDocument"]["Statement"][0]["Effect"] == "Deny":
        return "deny:" + out["context"]["code"]
    return str(out["context"]["verdict"])


def issue(tenant: str = "acme", **kwargs: Any) -> dict[str, Any]:
    return KeyService().create_key(tenant, actor="test:op", **kwargs)


def counters(tenant: str, key_id: str) -> tuple[int, int]:
    """(the key's count in its minute, the tenant's live requests this month)."""
    view = gate_support.view(tenant)
    return int(view["gate"][key_id].get(it.COUNT, 0)), int(view["mreq"])


# ------------------------------------------------------------------ networks


@pytest.mark.parametrize(
    ("cidrs", "source", "expected"),
    [
        (["198.51.100.0/24"], "198.51.100.7", "allow"),
        (["198.51.100.0/24"], "203.0.113.7", "deny:source_not_allowed"),
        (["2001:db8::/32"], "2001:db8:aa::1", "allow"),
        (["2001:db8::/32"], "2001:db9::1", "deny:source_not_allowed"),
        (["198.51.100.0/24"], "::ffff:198.51.100.9", "allow"),  # IPv4-mapped IPv6
        (["198.51.100.0/24"], "::ffff:203.0.113.9", "deny:source_not_allowed"),
        (["::ffff:198.51.100.0/120"], "198.51.100.9", "allow"),  # mapped list, plain source
        (["198.51.100.0/24"], "198.51.100.7, 10.0.0.1", "deny:source_not_allowed"),
        (["198.51.100.0/24"], "garbage", "deny:source_not_allowed"),
        (["198.51.100.0/24"], "", "deny:source_not_allowed"),
        (["198.51.100.0/24"], None, "deny:source_not_allowed"),
        (["198.51.100.0/24"], MISSING, "deny:source_not_allowed"),
        (["198.51.100.0/24"], 3325256711, "deny:source_not_allowed"),
        (None, MISSING, "allow"),  # no list: any source, even none
        (None, "garbage", "allow"),
    ],
)
def test_source_is_checked(cidrs: list[str] | None, source: Any, expected: str) -> None:
    seed.tenant("acme", seed.plan(requests_per_minute=100))
    key = issue(allow_cidrs=cidrs)
    assert verdict(key["secret"], source) == expected
    assert verdict(key["secret"], source) == expected  # and again, from the container's cache


def test_no_request_context_at_all_is_refused_for_a_bound_key() -> None:
    seed.tenant("acme", seed.plan())
    key = issue(allow_cidrs=["10.0.0.0/8"])
    raw = event(key["secret"])
    del raw["requestContext"]["identity"]
    out = handler.handler(raw, LambdaContext())
    assert out["context"]["code"] == "source_not_allowed"
    assert out["policyDocument"]["Statement"][0]["Effect"] == "Deny"


def test_the_refusal_is_a_clear_403_body() -> None:
    seed.tenant("acme", seed.plan())
    key = issue(allow_cidrs=["10.0.0.0/8"])
    ctx = call(key["secret"], "192.0.2.1")["context"]
    assert ctx["code"] == "source_not_allowed" and ctx["type"] == "permission_error"
    assert "network" in ctx["message"]


def test_a_refused_source_counts_nothing() -> None:
    seed.tenant("acme", seed.plan(requests_per_minute=3, requests_per_month=1000))
    key = issue(allow_cidrs=["10.0.0.0/8"])
    assert verdict(key["secret"], "10.1.1.1") == "allow"
    assert counters("acme", key["key_id"]) == (1, 1)
    handler._store = None  # a cold container: the refusal path with its give-back
    for _ in range(10):
        assert verdict(key["secret"], "192.0.2.1") == "deny:source_not_allowed"
    assert counters("acme", key["key_id"]) == (1, 1)
    # the minute's remaining 2 requests are still there for the allowed network
    assert [verdict(key["secret"], "10.2.2.2") for _ in range(3)] == [
        "allow", "allow", "rate_limit_exceeded"
    ]  # fmt: skip


def test_a_rate_limited_or_suspended_key_from_outside_says_only_source_not_allowed() -> None:
    seed.tenant("acme", seed.plan(requests_per_minute=1))
    key = issue(allow_cidrs=["10.0.0.0/8"])
    assert verdict(key["secret"], "10.0.0.1") == "allow"
    handler._store = None
    assert verdict(key["secret"], "192.0.2.1") == "deny:source_not_allowed"
    seed.set_entry("acme", key["key_id"], s="suspended")
    handler._store = None
    assert verdict(key["secret"], "192.0.2.1") == "deny:source_not_allowed"
    assert verdict(key["secret"], "10.0.0.1") == "deny:key_suspended"


def test_a_delegated_key_is_bound_to_its_own_networks() -> None:
    seed.tenant("acme", seed.plan())
    parent = issue(allow_cidrs=["10.0.0.0/8"])
    child = KeyService().delegate_key(
        parent["key_id"], principal="agent", allow_cidrs=["10.5.0.0/16"], actor="test:op"
    )
    assert verdict(child["secret"], "10.5.1.1") == "allow"
    assert verdict(child["secret"], "10.6.1.1") == "deny:source_not_allowed"
    assert verdict(parent["secret"], "10.6.1.1") == "allow"


def test_rotation_keeps_the_binding() -> None:
    seed.tenant("acme", seed.plan())
    key = issue(allow_cidrs=["10.0.0.0/8"])
    rotated = KeyService().rotate_key(key["key_id"], grace="1h", actor="test:op")
    assert verdict(rotated["secret"], "10.0.0.1") == "allow"
    assert verdict(rotated["secret"], "192.0.2.1") == "deny:source_not_allowed"
    assert verdict(key["secret"], "192.0.2.1") == "deny:source_not_allowed"  # in its grace


def _calls() -> list[str]:
    """Every DynamoDB call from now on (both clients: retried and send-once writes)."""
    calls: list[str] = []
    for client in (ddb.client(), ddb.client_once()):
        client.meta.events.register(
            "before-call.dynamodb", lambda model, **_: calls.append(model.name)
        )
    return calls


def test_the_cidr_check_adds_no_round_trip() -> None:
    """Steady state with and without a list: the key write, then a shard write (2)."""
    seed.tenant("acme", seed.plan(requests_per_minute=1000))
    plain, bound = issue(), issue(allow_cidrs=[f"10.{i}.0.0/16" for i in range(16)])
    call(plain["secret"], "10.3.0.1")
    call(bound["secret"], "10.3.0.1")  # cold reads done
    calls = _calls()
    for secret in (plain["secret"], bound["secret"]):
        calls.clear()
        for _ in range(10):
            assert call(secret, "10.3.0.1")["context"]["verdict"] == "allow"
        assert calls == ["UpdateItem", "UpdateItem"] * 10, secret


def test_the_refusal_path_costs_one_give_back_then_nothing() -> None:
    seed.tenant("acme", seed.plan(requests_per_minute=1000))
    key = issue(allow_cidrs=["10.0.0.0/8"])
    call(key["secret"], "10.0.0.1")  # warm: facts and shard view cached
    handler._store.__dict__["_cidrs"].clear()  # type: ignore[union-attr]
    calls = _calls()
    call(key["secret"], "192.0.2.1")
    assert calls == ["UpdateItem", "UpdateItem"]  # the key write, then its give-back
    calls.clear()
    for _ in range(5):
        call(key["secret"], "192.0.2.1")
    assert calls == []  # the container knows the key's networks: no write at all


# ------------------------------------------------------------------ tags


def test_tags_reach_the_context() -> None:
    seed.tenant("acme", seed.plan())
    key = issue(tags={"team": "search", "cost-center": "cc-7"})
    ctx = call(key["secret"])["context"]
    assert ctx["tags"] == "cost-center=cc-7,team=search"
    untagged = issue()
    assert call(untagged["secret"])["context"]["tags"] == ""


def test_tags_are_in_the_context_of_refusals_too() -> None:
    """A 429's usage attribution (the API reads the context of a limit verdict too)."""
    seed.tenant("acme", seed.plan(requests_per_minute=0))
    key = issue(tags={"team": "a"})
    out = call(key["secret"])["context"]
    assert (out["verdict"], out["tags"]) == ("rate_limit_exceeded", "team=a")


# ------------------------------------------------------------------ per-key limit


@pytest.mark.parametrize(("plan_rpm", "override"), [(2, 5), (5, 2), (None, 3), (3, 0), (0, 2)])
def test_the_override_wins_higher_or_lower(plan_rpm: int | None, override: int) -> None:
    limits = {} if plan_rpm is None else {"requests_per_minute": plan_rpm}
    seed.tenant("acme", seed.plan(**limits))
    key = issue()
    other = issue()
    KeyService().set_limit(key["key_id"], requests_per_minute=override, actor="test:op")
    got = [verdict(key["secret"]) for _ in range(override + 1)]
    assert got.count("allow") == override and got[-1] == "rate_limit_exceeded"
    if plan_rpm is not None:  # another key keeps the plan's
        others = [verdict(other["secret"]) for _ in range(plan_rpm + 1)]
        assert others.count("allow") == plan_rpm


def test_clearing_the_override_brings_back_the_plan_limit() -> None:
    seed.tenant("acme", seed.plan(requests_per_minute=2))
    key = issue()
    svc = KeyService()
    svc.set_limit(key["key_id"], requests_per_minute=4, actor="test:op")
    assert [verdict(key["secret"]) for _ in range(3)] == ["allow"] * 3
    svc.set_limit(key["key_id"], requests_per_minute="none", actor="test:op")
    assert it.KEY_RPM not in gate_support.view("acme")["gate"][key["key_id"]]
    assert verdict(key["secret"]) == "rate_limit_exceeded"  # 3 counted, the plan allows 2


def test_an_override_lowered_mid_minute_is_exact_on_the_next_request() -> None:
    seed.tenant("acme", seed.plan(requests_per_minute=100))
    key = issue()
    for _ in range(3):
        assert verdict(key["secret"]) == "allow"
    KeyService().set_limit(key["key_id"], requests_per_minute=3, actor="test:op")
    assert verdict(key["secret"]) == "rate_limit_exceeded"


def _hammer(secret: str, n_clients: int, per_client: int, now: float) -> Counter[str]:
    results: Counter[str] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(n_clients)

    def client() -> None:
        start.wait()
        for _ in range(per_client):
            raw = event(secret, "10.0.0.1")
            decision, _ = handler.decide(APIGatewayAuthorizerRequestEvent(raw), now)
            with lock:
                results[decision.code] += 1

    threads = [threading.Thread(target=client) for _ in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.parametrize(("plan_rpm", "override"), [(10, 100), (1000, 100), (None, 100)])
def test_override_exact_under_32_concurrent_clients(plan_rpm: int | None, override: int) -> None:
    now = time.time() // 60 * 60 + 5  # well inside one minute: the window cannot roll over
    for round_ in range(3):
        limits = {} if plan_rpm is None else {"requests_per_minute": plan_rpm}
        seed.tenant(f"t{round_}", seed.plan(f"p{round_}", **limits))
        key = issue(f"t{round_}", allow_cidrs=["10.0.0.0/8"])
        KeyService().set_limit(key["key_id"], requests_per_minute=override, actor="test:op")
        results = _hammer(key["secret"], 32, 5, now)  # 160 attempts against 100
        assert results["ok"] == override, (round_, results)
        assert results["rate_limit_exceeded"] == 160 - override, (round_, results)
        assert counters(f"t{round_}", key["key_id"]) == (override, override)
