"""Finding 6 of issue 11: a tool-invoke body without ``arguments`` (the tool's fields at the
top level) said "expression: Field required"; it names ``arguments`` and the expected body."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from functions.api import handler as api
from tests.integration.api_events import (
    Who,
    call,
    event,
    events_table,
    fresh_api,
    make_key,
    make_plan,
    make_tenant,
    who_for,
)

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


@pytest.fixture
def who(dynamodb: Any) -> Iterator[Who]:
    fresh_api()
    make_tenant("acme", make_plan())
    yield who_for("acme", make_key("acme"))
    api.reset()


def invoke(who: Who, name: str, body: Any) -> Any:
    return call(event("POST", f"/v1/tools/{name}/invoke", who, body=body))


@pytest.mark.parametrize("body", [{"expression": "1 + 1"}, {}, None])
def test_missing_arguments_names_the_field_and_the_shape(
    who: Who, dynamodb: Any, body: Any
) -> None:
    reply = invoke(who, "calculator", body)
    assert reply.status == 400, reply.text
    message = reply.error["message"]
    assert message.startswith("Missing 'arguments':"), message
    assert '{"arguments": {"expression": "..."}}' in message
    assert "/v1/tools/calculator/invoke" in message
    assert reply.error["param"] == "arguments"
    [recorded] = events_table(dynamodb)  # still one error event, as before
    assert recorded["error_class"] == "invalid_request"


def test_a_bad_field_inside_arguments_is_named_with_its_path(who: Who) -> None:
    reply = invoke(who, "token_count", {"arguments": {"txt": "hello"}})
    assert reply.status == 400
    message = reply.error["message"]
    assert message.startswith("Invalid value for 'arguments.text': Field required."), message
    assert '{"arguments": {"text": "..."}}' in message
    assert reply.error["param"] == "arguments.text"


def test_a_good_body_still_works(who: Who) -> None:
    reply = invoke(who, "calculator", {"arguments": {"expression": "6 * 7"}})
    assert reply.status == 200 and reply.json["result"] == {"value": 42}
