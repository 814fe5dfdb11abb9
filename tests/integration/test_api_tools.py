"""POST /v1/tools/{name}/invoke: real tools, entitled per tenant, one usage event each."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from functions.api import handler as api
from tests.integration.api_events import (
    Reply,
    Who,
    call,
    event,
    events_table,
    fresh_api,
    make_key,
    make_plan,
    make_tenant,
    tenant_item,
    who_for,
)

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


@pytest.fixture(autouse=True)
def tables(dynamodb: Any) -> Iterator[Any]:
    fresh_api()
    yield dynamodb
    api.reset()


@pytest.fixture
def who(dynamodb: Any) -> Who:
    make_tenant("acme", make_plan(), tokens_per_month=1000)
    return who_for("acme", make_key("acme"), principal="agent-3")


def invoke(who: Who, name: str, body: Any = None, raw: str | None = None) -> Reply:
    return call(event("POST", f"/v1/tools/{name}/invoke", who, body=body, raw_body=raw))


def test_calculator(who: Who, tables: Any) -> None:
    reply = invoke(who, "calculator", {"arguments": {"expression": "2 * (3 + 4) ** 2 - 7 // 2"}})
    assert reply.status == 200, reply.text
    assert reply.json == {"object": "tool.result", "tool": "calculator", "result": {"value": 95}}
    assert invoke(who, "calculator", {"arguments": {"expression": "1 / 4"}}).json["result"] == {
        "value": 0.25
    }
    [first, _] = sorted(events_table(tables), key=lambda e: e["ts"])
    assert first["operation"] == "tools.invoke" and first["model"] == "tool:calculator"
    assert first["status"] == "ok" and first["principal"] == "agent-3"
    assert first["prompt_tokens"] == first["completion_tokens"] == first["cost_micros"] == 0
    assert tenant_item(tables)["mtok"] == 0  # tools spend no tokens


def test_arguments_may_be_a_json_string(who: Who) -> None:
    reply = invoke(who, "calculator", {"arguments": '{"expression": "6*7"}'})
    assert reply.json["result"] == {"value": 42}


def test_token_count_and_utc_now(who: Who) -> None:
    reply = invoke(who, "token_count", {"arguments": {"text": "hello world"}})
    assert reply.json["result"]["tokens"] == 3
    evt = event("POST", "/v1/tools/utc_now/invoke", who)
    out = call(evt).json["result"]
    assert out["epoch_ms"] == evt["requestContext"]["requestTimeEpoch"]
    assert out["iso"].endswith("Z")


@pytest.mark.parametrize(
    "body",
    [
        {"arguments": {"expression": "__import__('os').system('id')"}},
        {"arguments": {"expression": "().__class__"}},
        {"arguments": {"expression": "x + 1"}},
        {"arguments": {"expression": "len('abc')"}},
        {"arguments": {"expression": "1 +"}},
        {"arguments": {"expression": "True + 1"}},
        {"arguments": {"expression": "'a' * 3"}},
        {"arguments": {"expression": "1" * 300}},
        {"arguments": {"expression": 5}},
        {"arguments": {"expr": "1"}},
        {"arguments": {}},
        {"arguments": "[1]"},
        {"arguments": "not json"},
        {"arguments": ["1"]},
    ],
)
def test_bad_tool_arguments_are_400_and_record_one_error_event(
    who: Who, tables: Any, body: Any
) -> None:
    reply = invoke(who, "calculator", body)
    assert reply.status == 400, reply.text
    assert reply.error["type"] == "invalid_request_error"
    [recorded] = events_table(tables)  # admitted, so one error event (invariant 4)
    assert recorded["status"] == "error" and recorded["error_class"] == "invalid_request"
    assert recorded["prompt_tokens"] == recorded["completion_tokens"] == 0


def test_bad_json_body_is_400(who: Who, tables: Any) -> None:
    assert invoke(who, "calculator", raw="{oops").status == 400
    [recorded] = events_table(tables)  # admitted, so one error event (invariant 4)
    assert recorded["status"] == "error" and recorded["error_class"] == "invalid_request"
    assert recorded["prompt_tokens"] == recorded["completion_tokens"] == 0


@pytest.mark.parametrize(
    "expression", ["1 / 0", "5 % 0", "10 ** 100000", "2 ** 5000", "1e308 * 10", "(-8) ** 0.5"]
)
def test_calculation_failures_are_tool_errors_with_an_event(
    who: Who, tables: Any, expression: str
) -> None:
    reply = invoke(who, "calculator", {"arguments": {"expression": expression}})
    assert reply.status == 400
    assert reply.error["code"] == "tool_error"
    [item] = events_table(tables)
    assert item["status"] == "error" and item["error_class"] == "tool_error"


def test_unknown_tool_is_404_with_an_error_event(who: Who, tables: Any) -> None:
    reply = invoke(who, "rm_rf", {"arguments": {}})
    assert reply.status == 404 and reply.error["code"] == "tool_not_found"
    [item] = events_table(tables)
    # a name no tool has is not billable: one `unknown` line, whatever the caller sent
    assert item["model"] == "unknown" and item["error_class"] == "tool_not_found"


def test_tools_are_entitled_per_tenant(dynamodb: Any, tables: Any) -> None:
    make_tenant("small", make_plan("small", tools=["calculator"]))
    make_tenant("big", make_plan("big"))  # no tools list: every tool
    small = who_for("small", make_key("small"))
    big = who_for("big", make_key("big"))
    args = {"arguments": {"text": "abc"}}

    refused = invoke(small, "token_count", args)
    assert refused.status == 403
    assert refused.error == {
        "message": "The tenant's plan does not include the tool 'token_count'.",
        "type": "permission_error",
        "code": "tool_not_allowed",
        "param": None,
    }
    assert invoke(small, "calculator", {"arguments": {"expression": "1"}}).status == 200
    assert invoke(big, "token_count", args).status == 200

    by_tenant = {(e["tenant_id"], e["model"], e["status"]) for e in events_table(tables)}
    assert by_tenant == {
        ("small", "tool:token_count", "error"),
        ("small", "tool:calculator", "ok"),
        ("big", "tool:token_count", "ok"),
    }


def test_tools_need_the_tools_scope(who: Who, tables: Any) -> None:
    narrow = Who(**{**who.__dict__, "scopes": "inference:invoke"})
    reply = invoke(narrow, "calculator", {"arguments": {"expression": "1"}})
    assert reply.status == 403 and reply.error["code"] == "insufficient_scope"
    assert events_table(tables) == []
