"""The authorizer against DynamoDB (moto's server, serialised as DynamoDB is atomic per item).

Every refusal reason, the policy it returns, exact counters under 32 concurrent clients,
round trips per request, and failing closed.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from functions.authorizer import handler
from functions.common import ddb, keyformat
from functions.common.routes import route_for
from tests.authorizer_events import LambdaContext, request_event
from tests.integration import seed

CHAT = route_for("POST", "/v1/chat/completions")
JOBS = route_for("GET", "/v1/fine_tuning/jobs")
MODELS = route_for("GET", "/v1/models")
TOOLS = route_for("POST", "/v1/tools/{name}/invoke")
assert CHAT and JOBS and MODELS and TOOLS


@pytest.fixture(autouse=True)
def tables(dynamodb: Any) -> Iterator[Any]:
    ddb.reset_client()
    handler._store = None
    yield dynamodb
    handler._store = None


def call(secret: str | None, route: Any = CHAT, header: str = "bearer") -> dict[str, Any]:
    headers = {}
    if secret is not None:
        headers = (
            {"Authorization": f"Bearer {secret}"} if header == "bearer" else {"x-api-key": secret}
        )
    return handler.handler(request_event(route, headers), LambdaContext())


def effect(out: dict[str, Any]) -> str:
    return out["policyDocument"]["Statement"][0]["Effect"]


def verdict(secret: str, route: Any = CHAT) -> str:
    out = call(secret, route)
    if effect(out) == "Deny":
        return "deny:" + out["context"]["code"]
    return out["context"]["verdict"]


def test_allow_returns_policy_for_this_method_only_and_context() -> None:
    seed.tenant("acme", seed.plan())
    key_id, secret = seed.key(principal="agent-7")
    event = request_event(CHAT, {"x-api-key": secret})
    out = handler.handler(event, LambdaContext())
    statement = out["policyDocument"]["Statement"]
    assert statement == [
        {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": [event["methodArn"]]}
    ]
    ctx = out["context"]
    assert ctx["verdict"] == "allow" and ctx["key_id"] == key_id and out["principalId"] == key_id
    assert ctx["tenant_id"] == "acme" and ctx["principal"] == "agent-7"
    assert ctx["environment"] == "live" and ctx["plan"] == "starter"
    assert "inference:invoke" in ctx["scopes"].split(",")
    assert all(isinstance(v, str) for v in ctx.values())


@pytest.mark.parametrize("header", ["bearer", "x-api-key"])
def test_both_headers_work(header: str) -> None:
    seed.tenant("acme", seed.plan())
    _, secret = seed.key()
    assert call(secret, header=header)["context"]["verdict"] == "allow"


def test_missing_malformed_unknown_are_401() -> None:
    seed.tenant("acme", seed.plan())
    seed.key()
    for secret in (None, "nope", keyformat.generate("live")[:-1] + "0", keyformat.generate("live")):
        with pytest.raises(handler.Unauthorized):
            call(secret)


def test_revoked_suspended_parent_and_tenant() -> None:
    seed.tenant("acme", seed.plan())
    kid, secret = seed.key()
    _, child_secret = seed.key(parent=kid, principal="agent")
    assert verdict(child_secret) == "allow"
    seed.suspend_with_children("acme", kid, "suspended")
    assert verdict(secret) == "deny:key_suspended"
    assert verdict(child_secret) == "deny:parent_key_inactive"
    seed.set_entry("acme", kid, s="revoked")
    assert verdict(secret) == "deny:key_revoked"
    seed.suspend_with_children("acme", kid, "active")
    assert verdict(secret) == "allow"
    assert verdict(child_secret) == "allow"
    seed.set_tenant_status("acme", "suspended")
    assert verdict(secret) == "deny:tenant_inactive"


def test_expired_environment_scope() -> None:
    seed.tenant("acme", seed.plan())
    _, expired = seed.key(expires_at=int(time.time()) - 1)
    assert verdict(expired) == "deny:key_expired"
    _, test_key = seed.key(env="test")
    assert verdict(test_key) == "allow"
    assert verdict(test_key, JOBS) == "deny:wrong_environment"
    _, narrow = seed.key(scopes=["inference:invoke"])
    assert verdict(narrow, TOOLS) == "deny:insufficient_scope"
    assert verdict(narrow, MODELS) == "allow"  # any valid key


def test_scope_removed_from_plan_is_refused() -> None:
    seed.tenant("acme", seed.plan(), plan_scopes=["inference:invoke"])
    _, secret = seed.key()
    assert verdict(secret) == "allow"
    assert verdict(secret, TOOLS) == "deny:scope_not_in_plan"


def test_rotation_grace() -> None:
    seed.tenant("acme", seed.plan())
    kid, old = seed.key()
    # rotate by hand: serial 2 is current, serial 1 valid for 60 s more
    seed.set_entry("acme", kid, n=2, g=int(time.time()) + 60)
    assert verdict(old) == "allow"
    seed.set_entry("acme", kid, g=int(time.time()) - 1)
    with pytest.raises(handler.Unauthorized):
        call(old)


def test_limits_are_verdicts_with_retry_after() -> None:
    seed.tenant("acme", seed.plan(requests_per_minute=2))
    _, secret = seed.key()
    assert [verdict(secret) for _ in range(3)] == ["allow", "allow", "rate_limit_exceeded"]
    out = call(secret)
    assert effect(out) == "Allow"  # admitted so that the API can answer 429
    assert 1 <= int(out["context"]["retry_after"]) <= 60


def test_monthly_quota_and_tokens() -> None:
    seed.tenant("acme", seed.plan(requests_per_month=2))
    _, a = seed.key()
    _, b = seed.key()
    assert [verdict(a), verdict(b), verdict(a)] == ["allow", "allow", "quota_exceeded"]
    seed.tenant("beta", seed.plan("tok", tokens_per_month=100), mtok=100)
    _, c = seed.key("beta")
    assert verdict(c) == "insufficient_quota"  # 100 of 100 tokens used this month
    seed.gate_support.set_shard("beta", mo="2000-01")  # an old month: rolls over (tk -> 0)
    assert verdict(c) == "allow"


def test_delegated_budget_exhausted() -> None:
    seed.tenant("acme", seed.plan())
    kid, _ = seed.key()
    child, secret = seed.key(parent=kid, budget=10)
    assert verdict(secret) == "allow"
    seed.set_entry("acme", child, u=10)
    assert verdict(secret) == "insufficient_quota"


def test_refusals_count_nothing() -> None:
    seed.tenant("acme", seed.plan(requests_per_minute=1))
    kid, secret = seed.key()
    for _ in range(5):
        call(secret)
    t = seed.gate_support.view("acme")
    assert t["mreq"] == 1 and t["gate"][kid]["c"] == 1


def _hammer(secret: str, n_clients: int, per_client: int, now: float) -> Counter[str]:
    results: Counter[str] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(n_clients)

    def client() -> None:
        start.wait()
        for _ in range(per_client):
            event = request_event(CHAT, {"x-api-key": secret})
            from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
                APIGatewayAuthorizerRequestEvent,
            )

            decision, _ = handler.decide(APIGatewayAuthorizerRequestEvent(event), now)
            with lock:
                results[decision.code] += 1

    threads = [threading.Thread(target=client) for _ in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.parametrize("limit", ["requests_per_minute", "requests_per_month"])
def test_exact_counters_under_32_concurrent_clients(limit: str) -> None:
    now = time.time() // 60 * 60 + 5  # well inside one minute: the window cannot roll over
    for round_ in range(5):
        seed.tenant(f"t{round_}", seed.plan(f"p{round_}", **{limit: 100}))
        _, secret = seed.key(f"t{round_}")
        results = _hammer(secret, 32, 5, now)  # 160 attempts against a limit of 100
        assert results["ok"] == 100, (round_, results)
        assert sum(results.values()) == 160


def test_round_trips_steady_state_is_two() -> None:
    seed.tenant("acme", seed.plan(requests_per_minute=1000))
    _, secret = seed.key()
    calls: list[str] = []
    ddb.client().meta.events.register(
        "before-call.dynamodb", lambda model, **_: calls.append(model.name)
    )
    call(secret)  # cold: facts read, shard read, key write (minute rollover), shard write
    first = list(calls)
    calls.clear()
    for _ in range(10):
        call(secret)
    assert first == ["GetItem", "GetItem", "UpdateItem", "UpdateItem"]
    assert calls == ["UpdateItem", "UpdateItem"] * 10  # the key item, then a shard


def test_fails_closed_when_dynamodb_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    seed.tenant("acme", seed.plan())
    _, secret = seed.key()
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    ddb.reset_client()
    with pytest.raises(handler.AuthorizerUnavailable):
        call(secret)
    ddb.reset_client()


def test_logs_hold_no_secret_or_hash(capsys: pytest.CaptureFixture[str]) -> None:
    import io
    import logging

    seed.tenant("acme", seed.plan(requests_per_minute=1))
    kid, secret = seed.key()
    handler.logger.setLevel(logging.INFO)
    buf = io.StringIO()
    stream = handler.logger.registered_handler.setStream(buf)  # type: ignore[attr-defined]
    try:
        for s in (secret, secret, "tg_live_bad", keyformat.generate("live")):
            with contextlib.suppress(handler.Unauthorized):
                call(s)
    finally:
        handler.logger.setLevel(logging.WARNING)
        handler.logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
    out = capsys.readouterr()
    text = buf.getvalue() + out.out + out.err
    assert kid in text  # the decision lines were logged ...
    assert secret not in text and keyformat.hash_secret(secret) not in text  # ... without secrets
    assert secret[8:-6] not in text
