"""Request parsing: bodies (pydantic), the authorizer's context and verdict (no I/O)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.api.caller import Caller, verdict_refusal
from functions.api.errors import InvalidRequest, NotAuthorized, ServiceUnavailable
from functions.api.schemas import ChatRequest, ToolCall, parse


def ctx(**over: str) -> dict[str, Any]:
    authorizer = {"tenant_id": "acme", "key_id": "key_1", "principal": "svc",
                  "parent_key_id": "", "environment": "live", "scopes": "a,b", "plan": "p",
                  "month": "2026-11", "token_alloc": "", "budget": "", "verdict": "allow",
                  "retry_after": "0", **over}  # fmt: skip
    return {
        "headers": {"User-Agent": "ua-header"},
        "requestContext": {"requestId": "r-1", "requestTimeEpoch": 1_790_000_000_123,
                           "identity": {"sourceIp": "192.0.2.1", "userAgent": "ua"},
                           "authorizer": authorizer},
    }  # fmt: skip


def test_caller_from_the_authorizer_context() -> None:
    caller = Caller.from_event(ctx(token_alloc="500", budget="40", parent_key_id="key_0"))
    assert (caller.tenant_id, caller.key_id, caller.principal) == ("acme", "key_1", "svc")
    assert (caller.lim_tmo, caller.budget, caller.parent_key_id) == (500, 40, "key_0")
    assert caller.scopes == frozenset({"a", "b"}) and not caller.is_test
    assert (caller.source_ip, caller.user_agent) == ("192.0.2.1", "ua")
    assert (caller.request_id, caller.request_time_ms) == ("r-1", 1_790_000_000_123)
    unlimited = Caller.from_event(ctx())
    assert (
        unlimited.lim_tmo is None and unlimited.budget is None and unlimited.parent_key_id is None
    )


def test_caller_refuses_events_without_the_gate() -> None:
    with pytest.raises(NotAuthorized):
        Caller.from_event({"requestContext": {"requestId": "r"}})
    with pytest.raises(NotAuthorized):
        Caller.from_event(ctx(tenant_id=""))
    with pytest.raises(ServiceUnavailable):
        Caller.from_event(ctx(token_alloc="lots"))


def test_the_authorizer_and_the_api_share_one_typed_contract() -> None:
    """What the authorizer writes (functions/gate/contract.py) is what the API reads back."""
    from functions.gate.contract import GateContext

    written = GateContext(
        tenant_id="acme", key_id="key_1", principal="svc", parent_key_id="key_0",
        environment="test", scopes="a,b", operation="chat.completions", plan="p",
        month="2026-11", shard=3, token_alloc=500, budget=-1, verdict="allow",
    ).to_context()  # fmt: skip
    assert all(isinstance(v, str) for v in written.values())  # as API Gateway passes them
    caller = Caller.from_event(ctx(**written))
    assert (caller.shard, caller.lim_tmo, caller.budget) == (3, 500, None)
    assert caller.window().environment == "test" and caller.window().parent_key_id == "key_0"


def test_unknown_environment_is_treated_as_test() -> None:
    assert Caller.from_event(ctx(environment="")).is_test


def test_verdicts() -> None:
    assert verdict_refusal(ctx()) is None
    refusal = verdict_refusal(
        ctx(verdict="rate_limit_exceeded", code="rate_limit_exceeded", type="requests",
            message="m", retry_after="9")
    )  # fmt: skip
    assert refusal is not None and refusal.status == 429
    assert refusal.body()["error"] == {"message": "m", "type": "requests",
                                       "code": "rate_limit_exceeded", "param": None}  # fmt: skip
    assert refusal.headers() == {"Retry-After": "9"}
    odd = verdict_refusal(ctx(verdict="something", retry_after="soon"))
    assert odd is not None and odd.status == 429 and odd.headers() == {}


@given(st.dictionaries(st.text(max_size=12), st.one_of(st.text(max_size=12), st.integers(),
                                                       st.none())))  # fmt: skip
def test_verdict_never_raises_on_any_context(authorizer: dict[str, Any]) -> None:
    out = verdict_refusal({"requestContext": {"authorizer": authorizer}})
    assert out is None or out.status == 429


def test_chat_request_fields() -> None:
    body = {"model": "tollgate-echo", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 9, "max_completion_tokens": 5, "stop": "x", "frequency_penalty": 1,
            "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip
    req = parse(ChatRequest, json.dumps(body))
    assert req.requested_max_tokens == 5
    assert req.stops == ("x",) and req.include_usage and req.stream
    assert req.messages[0].text == "hi"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (None, "A JSON request body is required."),
        ("  ", "A JSON request body is required."),
        ("{", "The request body is not valid JSON."),
        ("3", "The request body must be a JSON object."),
        ('{"model": "m", "messages": [{"role": "user", "content": "x"}], "top_p": 2}',
         "Invalid value for 'top_p': Input should be less than or equal to 1."),
    ],
)  # fmt: skip
def test_errors_name_the_field_not_the_value(body: str | None, message: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse(ChatRequest, body)
    assert err.value.message == message
    assert err.value.status == 400 and err.value.body()["error"]["type"] == "invalid_request_error"


def test_values_are_never_echoed() -> None:
    secret = "tg_live_" + "A" * 38
    with pytest.raises(InvalidRequest) as err:
        parse(ChatRequest, json.dumps({"model": secret + " x", "messages": []}))
    assert secret not in err.value.json()


@given(st.binary(max_size=200))
def test_any_bytes_parse_or_give_invalid_request(data: bytes) -> None:
    with contextlib.suppress(InvalidRequest):
        parse(ChatRequest, data)


def test_tool_call_arguments() -> None:
    assert parse(ToolCall, '{"arguments": "{\\"a\\": 1}"}').args == {"a": 1}
    assert parse(ToolCall, '{"arguments": {"a": 1}}').args == {"a": 1}
    assert ToolCall().args == {}
    with pytest.raises(InvalidRequest):
        parse(ToolCall, '{"arguments": "[1]"}')
