"""POST /v1/chat/completions and GET /v1/models through the API handler, on moto.

The built-in model, usage events (fields, cost, idempotency by request id), bad bodies,
the authorizer's 429 verdicts (answered with no I/O at all), live/test isolation.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from functions.api import handler as api
from functions.api.errors import ProviderError, ProviderUnreachable
from tests import gate_support
from tests.integration.api_events import (
    RoundTrips,
    Spy,
    Who,
    call,
    chat,
    chat_body,
    event,
    events_table,
    fresh_api,
    install,
    make_key,
    make_plan,
    make_tenant,
    tenant_item,
    who_for,
)

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

BEDROCK = "bedrock:anthropic.claude-3-haiku-20240307-v1:0"


@pytest.fixture(autouse=True)
def tables(dynamodb: Any) -> Iterator[Any]:
    fresh_api()
    yield dynamodb
    api.reset()


@pytest.fixture
def who(dynamodb: Any) -> Who:
    make_tenant(
        "acme",
        make_plan(
            models=["tollgate-echo", BEDROCK],
            price_prompt_micros_per_1k=1500,
            price_completion_micros_per_1k=2000,
        ),
        tokens_per_month=10_000,
    )
    return who_for("acme", make_key("acme"), principal="agent-7")


def test_echo_answers_with_the_last_user_message_and_counts_tokens(who: Who) -> None:
    body = {
        "model": "tollgate-echo",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "hello "}, {"type": "text", "text": "there"}],
            },
        ],
    }
    reply = call(event("POST", "/v1/chat/completions", who, body=body))
    assert reply.status == 200, reply.text
    out = reply.json
    assert out["object"] == "chat.completion"
    assert out["model"] == "tollgate-echo"
    assert out["choices"][0]["message"] == {
        "role": "assistant",
        "content": "hello there",
        "refusal": None,
    }
    assert out["choices"][0]["finish_reason"] == "stop"
    # 4 bytes per token, rounded up: "be brief" 2, "first" 2, "ok" 1, "hello there" 3.
    assert out["usage"] == {"prompt_tokens": 8, "completion_tokens": 3, "total_tokens": 11}
    assert reply.headers["x-request-id"] and out["id"].endswith(reply.headers["x-request-id"])


def test_max_tokens_caps_completion_and_stop_cuts_it(who: Who) -> None:
    out = chat(who, "abcdefghijklmnopqrstuvwxyz", max_tokens=3).json
    assert out["choices"][0]["message"]["content"] == "abcdefghijkl"
    assert out["usage"]["completion_tokens"] == 3
    assert out["choices"][0]["finish_reason"] == "length"
    out = chat(who, "one two. three", stop=["."]).json
    assert out["choices"][0]["message"]["content"] == "one two"
    assert out["choices"][0]["finish_reason"] == "stop"


def test_usage_event_has_every_field_and_no_text(who: Who, tables: Any) -> None:
    evt = event(
        "POST",
        "/v1/chat/completions",
        who,
        body=chat_body("a secret prompt about llamas", max_tokens=4),
        source_ip="198.51.100.9",
        user_agent="AsyncOpenAI/Python 1.99",
    )
    reply = call(evt)
    assert reply.status == 200
    [item] = events_table(tables)
    rc = evt["requestContext"]
    assert item == {
        "request_id": rc["requestId"],
        "ts": rc["requestTimeEpoch"],
        "tenant_id": "acme",
        "key_id": who.key_id,
        "principal": "agent-7",
        "environment": "live",
        "operation": "chat.completions",
        "model": "tollgate-echo",
        "plan": "starter",
        "prompt_tokens": 7,
        "completion_tokens": 4,
        # 7 * 1500 + 4 * 2000 = 18,500 thousandths of a micro-dollar: 18.5 -> 19 (half up)
        "cost_micros": 19,
        "status": "ok",
        "latency_ms": item["latency_ms"],
        "source_ip": "198.51.100.9",
        "user_agent": "AsyncOpenAI/Python 1.99",
        "delivery": item["delivery"],  # unique per delivery (tells a retried put from a dup)
        # the price it was charged at, fixed into the event (micro-dollars per 1M tokens)
        "cached_tokens": 0,
        "reasoning_tokens": 0,
        "price_prompt": 1_500_000,
        "price_completion": 2_000_000,
        "price_source": "plan",
    }
    assert isinstance(item["latency_ms"], int) and item["latency_ms"] >= 0
    assert len(item["delivery"]) == 32
    assert "llama" not in json.dumps(item) and "secret prompt" not in json.dumps(item)
    assert tenant_item(tables)["mtok"] == 11


def test_delegated_key_event_names_its_parent(dynamodb: Any, tables: Any) -> None:
    make_tenant("acme", make_plan())
    parent = make_key("acme")
    child = make_key("acme", parent=parent, budget=100)
    reply = chat(who_for("acme", child, principal="agent:planner"), "hi")
    assert reply.status == 200
    [item] = events_table(tables)
    assert item["parent_key_id"] == parent and item["key_id"] == child
    assert item["principal"] == "agent:planner"
    assert tenant_item(tables)["gate"][child]["u"] == 2  # "hi": 1 + 1


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (None, None),
        ("", None),
        ("{not json", None),
        ("[1, 2]", None),
        (json.dumps({"messages": [{"role": "user", "content": "x"}]}), "model"),
        (json.dumps({"model": "tollgate-echo", "messages": []}), "messages"),
        (json.dumps({"model": "tollgate-echo"}), "messages"),
        (json.dumps(chat_body() | {"messages": [{"role": "wizard", "content": "x"}]}), None),
        (json.dumps(chat_body() | {"messages": [{"role": "user", "content": 5}]}), None),
        (json.dumps(chat_body(max_tokens=0)), "max_tokens"),
        (json.dumps(chat_body(max_tokens="5")), "max_tokens"),
        (json.dumps(chat_body(max_tokens=10**9)), "max_tokens"),
        (json.dumps(chat_body(n=2)), "n"),
        (json.dumps(chat_body(stream="yes")), "stream"),
        (json.dumps(chat_body(temperature=3)), "temperature"),
        (json.dumps(chat_body(stop=["a", "b", "c", "d", "e"])), "stop"),
        (json.dumps(chat_body(model="has spaces")), "model"),
        (json.dumps(chat_body() | {"messages": [{"role": "user", "content": [{"x": 1}]}]}), None),
    ],
)  # fmt: skip
def test_bad_bodies_get_400_and_record_one_error_event(
    who: Who, tables: Any, raw: str | None, param: str | None
) -> None:
    before = tenant_item(tables)
    spy = install("echo", Spy())
    reply = call(event("POST", "/v1/chat/completions", who, raw_body=raw))
    assert reply.status == 400, reply.text
    err = reply.error
    assert err["type"] == "invalid_request_error" and err["code"] == "invalid_request"
    assert err["message"] and "Traceback" not in reply.text
    if param is not None:
        assert err["param"] == param
    [recorded] = events_table(tables)  # admitted, so one error event (invariant 4)
    assert recorded["status"] == "error" and recorded["error_class"] == "invalid_request"
    assert recorded["prompt_tokens"] == recorded["completion_tokens"] == 0
    assert tenant_item(tables) == before
    assert spy.calls == []


@pytest.mark.parametrize(
    ("verdict", "type_", "retry_after", "header"),
    [
        ("rate_limit_exceeded", "requests", "17", "17"),
        ("quota_exceeded", "insufficient_quota", "3600", "3600"),
        ("insufficient_quota", "insufficient_quota", "0", None),
    ],
)
def test_authorizer_verdict_is_answered_429_without_any_io(
    who: Who, tables: Any, verdict: str, type_: str, retry_after: str, header: str | None
) -> None:
    def no_dynamodb() -> Any:
        raise AssertionError("the 429 path must not call DynamoDB")

    from functions.api.services import Services

    services = Services.build()
    services.store._client = no_dynamodb
    services.budget._store = services.store
    fresh_api(services)
    spy = install("echo", Spy())
    refused = Who(**{**who.__dict__, "verdict": verdict, "code": verdict, "type": type_,
                     "message": "Limit reached.", "retry_after": retry_after})  # fmt: skip
    with RoundTrips() as trips:
        for path, method in (("/v1/chat/completions", "POST"), ("/v1/models", "GET"),
                             ("/v1/tools/calculator/invoke", "POST")):  # fmt: skip
            body = chat_body() if method == "POST" else None
            reply = call(event(method, path, refused, body=body))
            assert reply.status == 429
            assert reply.error == {
                "message": "Limit reached.",
                "type": type_,
                "code": verdict,
                "param": None,
            }
            assert reply.headers.get("retry-after") == header
    assert trips.calls == []
    assert spy.calls == []
    fresh_api()
    assert events_table(tables) == []


def test_missing_authorizer_context_is_refused(who: Who, tables: Any) -> None:
    reply = call(event("POST", "/v1/chat/completions", who, body=chat_body(), authorizer=False))
    assert reply.status == 401
    assert reply.error["code"] == "invalid_api_key"
    assert events_table(tables) == []


def test_test_key_reaches_only_echo(dynamodb: Any, tables: Any) -> None:
    make_tenant("acme", make_plan(models=["tollgate-echo", BEDROCK]), tokens_per_month=1000)
    who = who_for("acme", make_key("acme"), environment="test")
    bedrock = install("bedrock", Spy(error=AssertionError("a test key reached Bedrock")))

    reply = chat(who, "hi", model=BEDROCK)
    assert reply.status == 403
    assert reply.error["code"] == "model_not_allowed_for_test_key"
    assert reply.error["type"] == "permission_error"
    assert bedrock.calls == []

    models = call(event("GET", "/v1/models", who)).json
    assert [m["id"] for m in models["data"]] == ["tollgate-echo"]

    assert chat(who, "hi").status == 200
    events = sorted(events_table(tables), key=lambda e: e["operation"])
    assert {e["environment"] for e in events} == {"test"}
    refused = next(e for e in events if e["status"] == "error")
    assert refused["error_class"] == "model_not_allowed_for_test_key"
    assert refused["prompt_tokens"] == refused["completion_tokens"] == 0
    # only the echo request counted, and on the test keys' own counters (issue 12)
    assert gate_support.view("acme", "test")["mtok"] == 2
    assert tenant_item(tables)["mtok"] == 0


def test_live_key_sees_and_uses_only_its_plans_models(who: Who, tables: Any) -> None:
    models = call(event("GET", "/v1/models", who)).json
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["tollgate-echo", BEDROCK]
    assert {m["object"] for m in models["data"]} == {"model"}

    reply = chat(who, "hi", model="bedrock:meta.llama3-70b-instruct-v1:0")
    assert reply.status == 404
    assert reply.error["code"] == "model_not_found"
    [refused] = [e for e in events_table(tables) if e["status"] == "error"]
    assert refused["error_class"] == "model_not_found"
    assert tenant_item(tables)["mtok"] == 0


def test_unroutable_plan_models_are_not_listed(dynamodb: Any) -> None:
    make_tenant("acme", make_plan(models=["tollgate-echo", "gpt-4o", "upstream:gpt-4o"]))
    who = who_for("acme", make_key("acme"))
    models = call(event("GET", "/v1/models", who)).json
    assert [m["id"] for m in models["data"]] == ["tollgate-echo", "upstream:gpt-4o"]
    assert chat(who, "hi", model="gpt-4o").error["code"] == "model_not_found"


def test_redelivered_request_id_counts_once(who: Who, tables: Any) -> None:
    evt = event("POST", "/v1/chat/completions", who, body=chat_body("hello world", max_tokens=50))
    first, second = call(evt), call(evt)
    assert first.status == second.status == 200
    assert first.json["choices"] == second.json["choices"]
    assert len(events_table(tables)) == 1
    assert tenant_item(tables)["mtok"] == 6  # one request's tokens, not two


def test_concurrent_redeliveries_count_once(who: Who, tables: Any) -> None:
    evt = event("POST", "/v1/chat/completions", who, body=chat_body("hello world", max_tokens=50))
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def deliver() -> None:
        barrier.wait()
        statuses.append(call(json.loads(json.dumps(evt))).status)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 8
    assert len(events_table(tables)) == 1
    assert tenant_item(tables)["mtok"] == 6


def test_streaming_sends_sse_chunks_and_counts_usage(who: Who, tables: Any) -> None:
    text = "streamed words " * 10
    reply = chat(who, text, stream=True, stream_options={"include_usage": True})
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/event-stream"
    assert reply.text.endswith("data: [DONE]\n\n")
    chunks = [
        json.loads(line[len("data: ") :])
        for line in reply.text.split("\n\n")
        if line.startswith("data: {")
    ]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert content == text
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == []
    [item] = events_table(tables)
    assert (item["prompt_tokens"], item["completion_tokens"]) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert tenant_item(tables)["mtok"] == usage["total_tokens"]


def test_stream_without_include_usage_has_no_usage_chunk(who: Who) -> None:
    reply = chat(who, "hi", stream=True)
    assert '"usage"' not in reply.text
    assert reply.text.endswith("data: [DONE]\n\n")


def test_model_refusal_releases_reservation_and_records_error(who: Who, tables: Any) -> None:
    install("bedrock", Spy(error=ProviderUnreachable("Bedrock refused (AccessDeniedException).")))
    reply = chat(who, "hi", model=BEDROCK, max_tokens=100)
    assert reply.status == 502
    assert reply.error["code"] == "provider_error" and reply.error["type"] == "server_error"
    [item] = events_table(tables)
    assert item["status"] == "error" and item["error_class"] == "provider_error"
    assert item["prompt_tokens"] == item["completion_tokens"] == item["cost_micros"] == 0
    assert tenant_item(tables)["mtok"] == 0


def test_model_failure_after_running_bills_the_upper_bound(who: Who, tables: Any) -> None:
    """An unreadable answer: the provider ran and billed; Tollgate never bills 0 for it."""
    install("bedrock", Spy(error=ProviderError("Bedrock sent an answer Tollgate cannot read.")))
    reply = chat(who, "hi", model=BEDROCK, max_tokens=100)
    assert reply.status == 502
    [item] = events_table(tables)
    assert item["status"] == "error" and item["estimated"] is True
    assert item["completion_tokens"] == 100 and item["prompt_tokens"] > 0
    assert tenant_item(tables)["mtok"] == item["prompt_tokens"] + 100


def test_unexpected_failure_is_a_500_without_trace(who: Who, tables: Any) -> None:
    install("echo", Spy(error=RuntimeError("boom at /secret/path.py line 3")))
    reply = call(event("POST", "/v1/chat/completions", who, body=chat_body(max_tokens=10)))
    assert reply.status == 500
    assert reply.error == {
        "message": "Internal error.",
        "type": "server_error",
        "code": "internal_error",
        "param": None,
    }
    assert "boom" not in reply.text and "Traceback" not in reply.text
    [item] = events_table(tables)
    assert item["error_class"] == "internal_error"
    assert item["estimated"] is True  # the model may have run: its upper bound, not 0
    assert tenant_item(tables)["mtok"] == item["prompt_tokens"] + item["completion_tokens"]


def test_unknown_route_is_404(who: Who) -> None:
    evt = event("GET", "/v1/models", who)
    evt["path"] = evt["resource"] = "/v1/nothing"
    reply = call(evt)
    assert reply.status == 404
    assert reply.error["code"] == "not_found"


def test_concurrent_requests_of_different_tenants_never_mix(dynamodb: Any, tables: Any) -> None:
    """The handler is called from many threads at once (the local gateway does): each
    request must see only its own event, caller and body."""
    plan = make_plan()
    whos = []
    for i in range(4):
        make_tenant(f"tenant-{i}", plan)
        whos.append(who_for(f"tenant-{i}", make_key(f"tenant-{i}")))
    barrier = threading.Barrier(16)
    mixed: list[str] = []
    seen: dict[str, str] = {}

    def client(n: int) -> None:
        who = whos[n % 4]
        barrier.wait()
        for j in range(6):
            evt = event("POST", "/v1/chat/completions", who,
                        body=chat_body(f"{who.tenant_id} says {n}/{j}"))  # fmt: skip
            reply = call(evt)
            content = reply.json["choices"][0]["message"]["content"]
            if content != f"{who.tenant_id} says {n}/{j}":
                mixed.append(content)
            if reply.headers["x-request-id"] != evt["requestContext"]["requestId"]:
                mixed.append("x-request-id of another request")
            seen[evt["requestContext"]["requestId"]] = who.tenant_id

    threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert mixed == []
    events = events_table(tables)
    assert len(events) == 96
    assert all(seen[e["request_id"]] == e["tenant_id"] for e in events)
