"""Bad request bodies, paths and query strings on every route of the managed API, through the
real API handler with API Gateway proxy events of admitted requests (moto underneath).

For every input: a 2xx or a 4xx with the OpenAI error body -- never a 5xx, never a
traceback; exactly one usage event (the request was admitted: an error event if it was
refused); the tenant's token counter moves by exactly the tokens that event records (no
reservation left behind); nothing else written anywhere."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.support import count, fuzz, openai_error, snapshot
from tests.integration.api_events import (
    LambdaContext,
    Who,
    event,
    fresh_api,
    make_job,
    make_key,
    make_plan,
    make_tenant,
    who_for,
)

OTHER_TABLES = ("plans", "keys", "secrets", "audit", "rollups", "jobs", "detector")
JOB = "ftjob-fuzz0000000001"

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def _message() -> st.SearchStrategy[Any]:
    role = st.one_of(
        st.sampled_from(["user", "system", "assistant", "tool", "wizard", ""]), json_scalars
    )
    content = st.one_of(
        st.text(max_size=60),
        st.lists(
            st.fixed_dictionaries(
                {
                    "type": st.sampled_from(["text", "image"]),
                    "text": st.one_of(st.text(max_size=20), json_scalars),
                }
            ),
            max_size=3,
        ),
        json_values,
    )
    return st.one_of(st.fixed_dictionaries({"role": role, "content": content}), json_values)


chat_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "model": st.one_of(st.just("tollgate-echo"), st.text(max_size=30), json_scalars),
            "messages": st.one_of(st.lists(_message(), max_size=4), json_values),
        },
        optional={
            "max_tokens": st.one_of(st.integers(-5, 20_000), json_scalars),
            "max_completion_tokens": st.one_of(st.integers(-5, 20_000), json_scalars),
            "temperature": st.one_of(st.floats(-1, 3), json_scalars),
            "top_p": st.one_of(st.floats(-1, 2), json_scalars),
            "n": st.one_of(st.integers(-1, 3), json_scalars),
            "stop": st.one_of(
                st.text(max_size=8), st.lists(st.text(max_size=8), max_size=6), json_scalars
            ),
            "stream": st.one_of(st.booleans(), json_scalars),
            "stream_options": st.one_of(
                st.fixed_dictionaries({"include_usage": st.one_of(st.booleans(), json_scalars)}),
                json_values,
            ),
            "user": st.one_of(st.text(max_size=300), json_scalars),
            "extra": json_values,
        },
    ),
)

# Bodies API Gateway delivers as text, or base64-encoded (binary media types; the local
# gateway encodes any body that is not UTF-8), and base64 that does not decode.
raw_bodies = st.one_of(
    st.none(),
    st.text(max_size=80).map(lambda t: ("text", t)),
    st.text(max_size=80).map(lambda t: ("b64", base64.b64encode(t.encode()).decode())),
    st.binary(max_size=80).map(lambda b: ("b64", base64.b64encode(b).decode())),
    st.just(("text", '{"model": "tollgate-echo", "messages": [')),
    st.just(("b64", "not base64!!")),
)
# Path segments: API Gateway's {name} and {id} take any (percent-decoded) segment, including
# characters Powertools' router does not match (", \, `, control characters): those still
# answer 404 with their usage event.
SEGMENT = st.one_of(
    st.text(alphabet=st.characters(blacklist_characters="/", codec="utf-8"), min_size=1,
            max_size=30),
    st.text(alphabet=st.sampled_from(list("-._~()'!*:@,;=+&$%<> []{}|^_\"`\x1f")), min_size=1,
            max_size=8),
)  # fmt: skip
tool_names = st.one_of(
    st.sampled_from(["calculator", "token_count", "utc_now", "teleport", "CALCULATOR"]), SEGMENT
)
tool_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "arguments": st.one_of(
                json_values,
                st.fixed_dictionaries(
                    {"expression": st.one_of(st.text(max_size=60), json_scalars)}
                ),
                st.fixed_dictionaries({"text": st.one_of(st.text(max_size=60), json_scalars)}),
                st.text(max_size=60),
            )
        }
    ),
)
queries = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from(["limit", "after", "x", ""]),
        st.one_of(st.text(max_size=30), st.integers(-5, 200).map(str)),
        max_size=3,
    ),
)
ids = st.one_of(st.just(JOB), SEGMENT, st.from_regex(r"ftjob-[A-Za-z0-9]{1,70}", fullmatch=True))


@pytest.fixture
def caller(dynamodb: Any) -> Who:
    fresh_api()
    plan = make_plan("fuzz", tools=None)
    make_tenant("acme", plan, tokens_per_month=10**12)
    make_job("acme", JOB)
    return who_for("acme", make_key("acme"))


def _send(dynamodb: Any, evt: dict[str, Any]) -> None:
    """Call the API with ``evt`` and check everything the module docstring promises."""
    from functions.api import handler as api
    from functions.common import ddb

    rid = evt["requestContext"]["requestId"]

    def state() -> tuple[int, int]:
        from tests import gate_support

        tokens = gate_support.view("acme")["mtok"]
        n = dynamodb.scan(TableName="tollgate-usage", Select="COUNT", ConsistentRead=True)
        return int(tokens), int(n["Count"])

    before_tokens, before_events = state()
    others = snapshot(dynamodb, *OTHER_TABLES)
    out = api.handler(evt, LambdaContext())
    status, body = out["statusCode"], out.get("body") or ""
    assert 200 <= status < 500, (status, body[:300])
    if status >= 400:
        openai_error(body)
    else:
        assert "Traceback" not in body
    after_tokens, after_events = state()
    assert after_events == before_events + 1, "exactly one usage event per admitted request"
    got = dynamodb.get_item(
        TableName="tollgate-usage", Key={"request_id": {"S": rid}}, ConsistentRead=True
    )
    assert "Item" in got, "the usage event is this request's"
    item = ddb.item_from_ddb(got["Item"])
    assert (item["status"] == "ok") == (status < 400), (status, item["status"])
    tokens = int(item.get("prompt_tokens") or 0) + int(item.get("completion_tokens") or 0)
    assert after_tokens - before_tokens == tokens, "no reservation left in the counters"
    assert snapshot(dynamodb, *OTHER_TABLES) == others, "nothing else written"


def _with_raw(evt: dict[str, Any], raw: tuple[str, str] | None) -> dict[str, Any]:
    if raw is None:
        evt["body"], evt["isBase64Encoded"] = None, False
    else:
        kind, text = raw
        evt["body"], evt["isBase64Encoded"] = text, kind == "b64"
    return evt


@fuzz(60)
@given(body=st.one_of(chat_bodies.map(lambda b: ("json", b)), raw_bodies.map(lambda r: ("raw", r))))
def test_chat_completions(dynamodb: Any, caller: Who, body: tuple[str, Any]) -> None:
    count("api chat body")
    kind, value = body
    evt = event("POST", "/v1/chat/completions", caller, request_id=str(uuid.uuid4()))
    if kind == "json":
        evt["body"] = json.dumps(value)
    else:
        _with_raw(evt, value)
    _send(dynamodb, evt)


@fuzz(40)
@given(name=tool_names, body=st.one_of(tool_bodies.map(json.dumps), raw_bodies))
def test_tools_invoke(dynamodb: Any, caller: Who, name: str, body: Any) -> None:
    count("api tool name+body")
    evt = event("POST", "/v1/tools/calculator/invoke", caller, request_id=str(uuid.uuid4()))
    evt["path"] = f"/v1/tools/{name}/invoke"
    evt["pathParameters"] = {"name": name}
    if isinstance(body, str):
        evt["body"] = body
    else:
        _with_raw(evt, body)
    _send(dynamodb, evt)


@fuzz(30)
@given(query=queries, body=raw_bodies)
@example(query={"limit": "\u00b2"}, body=None)  # "²".isdigit() is True; int("²") raises
@example(query={"limit": "\u0663"}, body=None)  # Arabic-Indic three: int() takes it
def test_fine_tuning_list_and_models(
    dynamodb: Any, caller: Who, query: dict[str, str] | None, body: Any
) -> None:
    count("api list query")
    for path in ("/v1/fine_tuning/jobs", "/v1/models"):
        evt = event("GET", path, caller, request_id=str(uuid.uuid4()), query=query)
        _send(dynamodb, _with_raw(evt, body))


@fuzz(30)
@given(job_id=ids)
def test_fine_tuning_get(dynamodb: Any, caller: Who, job_id: str) -> None:
    count("api job id")
    evt = event("GET", f"/v1/fine_tuning/jobs/{JOB}", caller, request_id=str(uuid.uuid4()))
    evt["path"] = f"/v1/fine_tuning/jobs/{job_id}"
    evt["pathParameters"] = {"id": job_id}
    _send(dynamodb, evt)


@pytest.mark.parametrize("raw", ["gA==", "//79", "not base64!!"])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/tools/calculator/invoke"])
def test_a_body_that_is_not_utf8_is_a_400(dynamodb: Any, caller: Who, raw: str, path: str) -> None:
    count("api: fixed bugs")
    evt = event("POST", path, caller, request_id=str(uuid.uuid4()))
    _send(dynamodb, _with_raw(evt, ("b64", raw)))


@pytest.mark.parametrize("segment", ['a"b', "a\\b", "a`b", "\x1f"])
@pytest.mark.parametrize("route", ["tool", "job"])
def test_a_path_segment_the_router_refuses_still_leaves_its_event(
    dynamodb: Any, caller: Who, segment: str, route: str
) -> None:
    count("api: fixed bugs")
    if route == "tool":
        evt = event("POST", "/v1/tools/calculator/invoke", caller, request_id=str(uuid.uuid4()))
        evt["path"], evt["pathParameters"] = f"/v1/tools/{segment}/invoke", {"name": segment}
    else:
        evt = event("GET", f"/v1/fine_tuning/jobs/{JOB}", caller, request_id=str(uuid.uuid4()))
        evt["path"], evt["pathParameters"] = f"/v1/fine_tuning/jobs/{segment}", {"id": segment}
    _send(dynamodb, evt)
