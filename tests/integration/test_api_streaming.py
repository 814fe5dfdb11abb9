"""Streaming, long calls and the routes clients expect, through the API handler and the
local gateway with the official OpenAI SDK over real HTTP (a moto server behind).

Arrival is checked by order, never by time: a gated provider produces its next word only
once the client has received the previous one (or after a generous wait, which the test
then reports as a failure): a gateway that buffered the body would make every word wait.
"""

from __future__ import annotations

import http.server
import json
import math
import threading
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import openai
import pytest
from werkzeug.serving import make_server

from functions.api import handler as api
from functions.api import runtime
from functions.api.config import ApiSettings
from functions.api.providers.base import ChatMessage, Completion, Delta, ModelCall
from functions.api.providers.bedrock import BedrockProvider, parse_stream
from functions.api.services import Services
from functions.api.streaming import SEPARATOR
from functions.common.routes import ROUTES
from tests.integration.api_events import (
    Who,
    call,
    chat,
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
from tests.integration.test_api_providers import FakeUpstream, _secret, _with_upstream
from tollgate.local.gateway import LocalGateway

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

UPSTREAM = "upstream:gpt-4o-mini"
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
_WHO: dict[str, Who] = {}


@pytest.fixture(autouse=True)
def tables(dynamodb: Any) -> Iterator[Any]:
    fresh_api()
    yield dynamodb
    api.reset()


@pytest.fixture
def who(dynamodb: Any) -> Who:
    plan = make_plan(models=["tollgate-echo", UPSTREAM, f"bedrock:{CLAUDE}"])
    make_tenant("acme", plan, tokens_per_month=100_000)
    return who_for("acme", make_key("acme"))


def allow(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    """A test authorizer for the local gateway: allows the key the test registered."""
    who = _WHO["who"]
    return {
        "principalId": who.key_id,
        "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": event["methodArn"]}
        ]},
        "context": {k: v for k, v in who.context("x").items() if k != "principalId"},
    }  # fmt: skip


@pytest.fixture
def gateway(who: Who) -> Iterator[str]:
    _WHO["who"] = who
    server = make_server("127.0.0.1", 0, LocalGateway(authorizer=f"{__name__}.allow"),
                         threaded=True)  # fmt: skip
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def sdk(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="tg_live_x", max_retries=0, timeout=30)


class GatedEcho:
    """tollgate-echo's answer, one word at a time, each word only after the client said it
    received the previous one (``received``), or after ``patience`` s (counted as a miss)."""

    kind = "echo"

    def __init__(self, patience: float = 10.0) -> None:
        self.received = threading.Semaphore(0)
        self.patience = patience
        self.log: list[str] = []
        self.misses = 0

    def prompt_upper_bound(self, messages: tuple[ChatMessage, ...]) -> int:
        from functions.api.providers.echo import EchoProvider

        return EchoProvider().prompt_upper_bound(messages)

    def complete(self, call: ModelCall) -> Completion:
        from functions.api.providers.echo import EchoProvider

        return EchoProvider().complete(call)

    def stream(self, call: ModelCall) -> Iterator[Delta]:
        from functions.api.providers.echo import EchoProvider, words

        whole = EchoProvider().complete(call)

        def produce() -> Iterator[Delta]:
            for i, word in enumerate(words(whole.text)):
                if i and not self.received.acquire(timeout=self.patience):
                    self.misses += 1
                self.log.append(f"produced {i}")
                yield Delta(text=word)
            yield Delta(finish_reason="stop", prompt_tokens=whole.prompt_tokens,
                        completion_tokens=whole.completion_tokens)  # fmt: skip

        return produce()


# -- streaming through the local gateway, as API Gateway streams -------------------------
def test_chat_stream_arrives_as_produced_with_usage_last(gateway: str, tables: Any) -> None:
    gated = GatedEcho()
    install("echo", gated)
    text = "one two three four five six seven eight"
    stream = sdk(gateway).chat.completions.create(
        model="tollgate-echo", messages=[{"role": "user", "content": text}], stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = []
    for chunk in stream:
        chunks.append(chunk)
        if chunk.choices and chunk.choices[0].delta.content:
            gated.log.append(f"received {len(gated.log)}")
            gated.received.release()
    words = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(words) == text and len(words) == 8  # one chunk per word
    assert gated.misses == 0  # every word reached the client before the next was produced
    produced = [e for e in gated.log if e.startswith("produced")]
    assert len(produced) == 8
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == math.ceil(len(text) / 4)
    [item] = events_table(tables)
    assert item["completion_tokens"] == chunks[-1].usage.completion_tokens
    assert "estimated" not in item


def test_responses_api_streamed_and_whole(gateway: str, tables: Any) -> None:
    client = sdk(gateway)
    whole = client.responses.create(model="tollgate-echo", input="say it back",
                                    instructions="be an echo")  # fmt: skip
    assert whole.output_text == "say it back"
    assert whole.usage is not None and whole.usage.output_tokens == 3
    events = list(client.responses.create(
        model="tollgate-echo",
        input=[{"role": "user", "content": "first"},
               {"role": "assistant", "content": "ok"},
               {"role": "user", "content": [{"type": "input_text", "text": "last words here"}]}],
        stream=True,
    ))  # fmt: skip
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas == ["last ", "words ", "here"]
    final = events[-1].response  # type: ignore[union-attr]
    assert final.output_text == "last words here" and final.usage is not None
    ops = sorted(e["operation"] for e in events_table(tables))
    assert ops == ["responses.create", "responses.create"]


def test_client_gone_mid_stream_is_billed_what_was_generated(gateway: str, tables: Any) -> None:
    """The client reads two words and hangs up: the event still bills the whole answer the
    model produced (the stream is read to its end after the client left)."""
    text = " ".join(f"w{i}" for i in range(40))
    with httpx.Client(timeout=30) as client, client.stream(
        "POST", f"{gateway}/v1/chat/completions",
        json={"model": "tollgate-echo", "stream": True,
              "messages": [{"role": "user", "content": text}]},
    ) as resp:  # fmt: skip
        assert resp.status_code == 200
        lines = resp.iter_lines()
        got: list[str] = []
        for line in lines:
            if line.startswith("data:"):
                got.append(line)
            if len(got) == 3:
                break
    # The gateway notices on its next write; the event is written once the stream is drained.
    for _ in range(200):
        items = events_table(tables)
        if items:
            break
        threading.Event().wait(0.05)
    [item] = items
    assert item["completion_tokens"] >= math.ceil(len(text) / 4)
    assert tenant_item(tables)["mtok"] >= item["prompt_tokens"] + item["completion_tokens"]


def test_embeddings_and_models_retrieve(gateway: str, tables: Any) -> None:
    client = sdk(gateway)
    out = client.embeddings.create(model="tollgate-echo", input=["a", "hello world"])
    assert [len(d.embedding) for d in out.data] == [16, 16]
    for d in out.data:
        assert math.isclose(sum(v * v for v in d.embedding), 1.0, rel_tol=1e-5)
    again = client.embeddings.create(model="tollgate-echo", input="a", dimensions=8,
                                     encoding_format="float")  # fmt: skip
    assert len(again.data[0].embedding) == 8
    assert out.usage.prompt_tokens == 1 + 3
    assert client.models.retrieve("tollgate-echo").id == "tollgate-echo"
    assert client.models.retrieve(UPSTREAM).owned_by == "upstream"
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("bedrock:meta.llama3-not-in-plan")
    assert missing.value.code == "model_not_found"
    ops = sorted(e["operation"] for e in events_table(tables))
    assert ops.count("models.retrieve") == 3 and ops.count("embeddings.create") == 2


def test_test_key_rules_on_the_new_routes(who: Who) -> None:
    test_who = Who(**{**who.__dict__, "environment": "test"})
    reply = call(event("GET", f"/v1/models/{UPSTREAM}", test_who))
    assert reply.status == 404 and reply.error["code"] == "model_not_found"
    reply = call(event("POST", "/v1/embeddings", test_who,
                       body={"model": UPSTREAM, "input": "x"}))  # fmt: skip
    assert reply.status == 403
    reply = call(event("POST", "/v1/responses", test_who, body={"model": UPSTREAM, "input": "x"}))
    assert reply.status == 403


# -- the upstream: include_usage forced on; a stall and a drop never bill less ---------------
@pytest.fixture
def upstream(moto_server: Any) -> Iterator[FakeUpstream]:
    server = FakeUpstream()
    yield server
    server.close()


def test_upstream_stream_forces_include_usage_and_bills_it(
    who: Who, upstream: FakeUpstream, tables: Any
) -> None:
    _with_upstream(_secret(upstream), [])
    reply = chat(who, "hi", model=UPSTREAM, max_tokens=50, stream=True)
    assert reply.status == 200 and reply.text.endswith("data: [DONE]\n\n")
    assert upstream.requests[-1]["body"]["stream_options"] == {"include_usage": True}
    [item] = events_table(tables)
    assert (item["prompt_tokens"], item["completion_tokens"]) == (9, 6)
    assert tenant_item(tables)["mtok"] == 15


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("mode", ["stall", "drop"])
def test_upstream_cut_after_tokens_bills_at_least_what_it_billed(
    who: Who, upstream: FakeUpstream, tables: Any, mode: str, stream: bool
) -> None:
    _with_upstream(_secret(upstream), [], timeout_s=0.5)
    upstream.mode = mode
    # A 0.5 s time limit caps max_tokens at 10 (20 tokens/s: functions/api/catalog.py).
    reply = chat(who, "hi", model=UPSTREAM, max_tokens=10, stream=stream)
    if stream:
        assert reply.status == 200  # the status had left; the stream ends with an error
        assert '"error"' in reply.text and "[DONE]" not in reply.text
    [item] = events_table(tables)
    assert item["estimated"] is True and item["status"] == "error"
    assert item["completion_tokens"] >= upstream.billed  # never below the provider's bill
    assert item["completion_tokens"] == 10  # the reservation's upper bound
    assert tenant_item(tables)["mtok"] == item["prompt_tokens"] + item["completion_tokens"]


def test_sdk_sees_a_mid_stream_failure_as_an_error(
    gateway: str, upstream: FakeUpstream, tables: Any
) -> None:
    _with_upstream(_secret(upstream), [], timeout_s=0.5)
    upstream.mode = "drop"
    stream = sdk(gateway).chat.completions.create(
        model=UPSTREAM, messages=[{"role": "user", "content": "x"}], stream=True, max_tokens=10
    )
    with pytest.raises(openai.APIError):
        list(stream)
    [item] = events_table(tables)
    assert item["estimated"] is True and item["completion_tokens"] == 10


def test_sdk_embeddings_through_the_upstream(
    gateway: str, upstream: FakeUpstream, tables: Any
) -> None:
    """The SDK asks for base64 by default and decodes it; both encodings reach the client
    as the upstream's vectors, billed on the upstream's reported prompt tokens."""
    _with_upstream(_secret(upstream), [])
    client = sdk(gateway)
    out = client.embeddings.create(model=UPSTREAM, input=["hello", "hi"], dimensions=3)
    assert upstream.requests[-1]["body"]["encoding_format"] == "base64"
    assert [d.embedding for d in out.data] == [FakeUpstream.embedding("hello", 3),
                                               FakeUpstream.embedding("hi", 3)]  # fmt: skip
    assert out.usage.prompt_tokens == 7 and out.model == UPSTREAM
    floats = client.embeddings.create(model=UPSTREAM, input="abc", encoding_format="float")
    assert floats.data[0].embedding == FakeUpstream.embedding("abc", 4)
    items = events_table(tables)
    assert sorted(e["prompt_tokens"] for e in items) == [3, 7]
    assert {e["operation"] for e in items} == {"embeddings.create"}
    assert tenant_item(tables)["mtok"] == 10


# -- Bedrock ConverseStream ------------------------------------------------------------------
RECORDED = [  # the shapes botocore's EventStream yields for ConverseStream
    {"messageStart": {"role": "assistant"}},
    {"contentBlockDelta": {"delta": {"text": "Par"}, "contentBlockIndex": 0}},
    {"contentBlockDelta": {"delta": {"text": "is."}, "contentBlockIndex": 0}},
    {"contentBlockStop": {"contentBlockIndex": 0}},
    {"messageStop": {"stopReason": "end_turn"}},
    {"metadata": {"usage": {"inputTokens": 12, "outputTokens": 3, "totalTokens": 15},
                  "metrics": {"latencyMs": 80}}},
]  # fmt: skip


def test_bedrock_stream_events_parse_to_deltas_with_usage() -> None:
    deltas = list(parse_stream(RECORDED))
    assert "".join(d.text for d in deltas) == "Paris."
    assert [d.finish_reason for d in deltas if d.finish_reason] == ["stop"]
    assert (deltas[-1].prompt_tokens, deltas[-1].completion_tokens) == (12, 3)


def test_bedrock_stream_without_metadata_is_an_error() -> None:
    from functions.api.errors import ProviderError

    with pytest.raises(ProviderError):
        list(parse_stream(RECORDED[:-1]))


class RecordedBedrock:
    """Stands in for the bedrock-runtime client's ``converse_stream``: botocore's Stubber
    validates a stubbed response against the output shape and refuses anything but a dict
    for the event stream, so it cannot produce one; the recorded events take its place."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.requests: list[dict[str, Any]] = []

    def converse_stream(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        return {"stream": iter(self.events)}


def test_bedrock_converse_stream_through_the_handler(who: Who, tables: Any) -> None:
    client = RecordedBedrock(RECORDED)
    install("bedrock", BedrockProvider(lambda: client))
    reply = chat(who, "capital?", model=f"bedrock:{CLAUDE}", max_tokens=30, stream=True,
                 stream_options={"include_usage": True})  # fmt: skip
    assert reply.status == 200
    assert client.requests == [{"modelId": CLAUDE, "inferenceConfig": {"maxTokens": 30},
        "messages": [{"role": "user", "content": [{"text": "capital?"}]}]}]  # fmt: skip
    data = [json.loads(x[6:]) for x in reply.text.split("\n\n") if x.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in data if c["choices"])
    assert text == "Paris."
    assert data[-1]["usage"]["total_tokens"] == 15
    assert tenant_item(tables)["mtok"] == 15


def test_bedrock_stream_cut_bills_the_upper_bound(who: Who, tables: Any) -> None:
    install("bedrock", BedrockProvider(lambda: RecordedBedrock(RECORDED[:3])))
    reply = chat(who, "capital?", model=f"bedrock:{CLAUDE}", max_tokens=30, stream=True)
    assert reply.status == 200 and '"error"' in reply.text
    [item] = events_table(tables)
    assert item["estimated"] is True and item["completion_tokens"] == 30


# -- the function's runtime: what it posts to Lambda's Runtime API ---------------------------
class FakeRuntimeApi(http.server.ThreadingHTTPServer):
    """Lambda's Runtime API for one invocation: hands out ``event`` and records the
    response (headers, each HTTP chunk, trailers)."""

    def __init__(self, event: dict[str, Any]) -> None:
        self.event = event
        self.posted: dict[str, Any] = {}
        self.done = threading.Event()
        super().__init__(("127.0.0.1", 0), _RuntimeHandler)


class _RuntimeHandler(http.server.BaseHTTPRequestHandler):
    server: FakeRuntimeApi
    protocol_version = "HTTP/1.1"

    def log_message(self, *_: Any) -> None:
        return None

    def do_GET(self) -> None:
        body = json.dumps(self.server.event).encode()
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", "inv-1")
        self.send_header("Lambda-Runtime-Deadline-Ms", "99999999999999")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        posted = self.server.posted
        posted["path"], posted["headers"] = self.path, dict(self.headers)
        chunks: list[bytes] = []
        if self.headers.get("Transfer-Encoding") == "chunked":
            while (size := int(self.rfile.readline().strip(), 16)) > 0:
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            posted["trailers"] = self.rfile.readline()
        else:
            chunks.append(self.rfile.read(int(self.headers["Content-Length"])))
        posted["chunks"] = chunks
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.server.done.set()


def _invoke_through_runtime(evt: dict[str, Any]) -> dict[str, Any]:
    server = FakeRuntimeApi(evt)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        address = f"127.0.0.1:{server.server_port}"
        runtime.invoke_once(runtime.RuntimeApi(address), api.handler, {})
        assert server.done.wait(10)
        return server.posted
    finally:
        server.shutdown()
        server.server_close()


def test_runtime_streams_a_streaming_route_chunk_by_chunk(who: Who) -> None:
    text = "alpha beta gamma delta"
    body = {"model": "tollgate-echo", "stream": True,
            "messages": [{"role": "user", "content": text}]}  # fmt: skip
    posted = _invoke_through_runtime(event("POST", "/v1/chat/completions", who, body=body))
    headers = posted["headers"]
    assert posted["path"] == "/2018-06-01/runtime/invocation/inv-1/response"
    assert headers["Lambda-Runtime-Function-Response-Mode"] == "streaming"
    assert headers["Content-Type"] == "application/vnd.awslambda.http-integration-response"
    first, *rest = posted["chunks"]
    prelude, separator, _ = first.partition(SEPARATOR)
    assert separator and json.loads(prelude)["statusCode"] == 200
    assert json.loads(prelude)["multiValueHeaders"]["Content-Type"] == ["text/event-stream"]
    words = [c for c in rest if b'"content":"' in c and b'"content":""' not in c]
    assert len(words) == 4  # one HTTP chunk per word, as produced
    assert rest[-1] == b"data: [DONE]\n\n"
    assert posted["trailers"] == b"\r\n"  # no error


def test_runtime_answers_a_buffered_route_as_json(who: Who) -> None:
    posted = _invoke_through_runtime(event("GET", "/v1/models", who))
    assert "Lambda-Runtime-Function-Response-Mode" not in posted["headers"]
    out = json.loads(b"".join(posted["chunks"]))
    assert out["statusCode"] == 200 and "tollgate-echo" in out["body"]


def test_runtime_errors_before_the_stream_are_statuses(who: Who) -> None:
    body = {"model": "bedrock:not-in-plan", "stream": True,
            "messages": [{"role": "user", "content": "x"}]}  # fmt: skip
    posted = _invoke_through_runtime(event("POST", "/v1/chat/completions", who, body=body))
    prelude = posted["chunks"][0].partition(SEPARATOR)[0]
    assert json.loads(prelude)["statusCode"] == 404


def test_only_inference_routes_stream() -> None:
    assert {r.operation for r in ROUTES if r.streaming} == {"chat.completions",
                                                            "responses.create"}  # fmt: skip


# -- budgets stay exact with many clients streaming ------------------------------------------
def test_32_streaming_clients_never_overshoot_the_budget(dynamodb: Any, tables: Any) -> None:
    plan = make_plan(models=["tollgate-echo"])
    limit = 1000
    make_tenant("acme", plan, tokens_per_month=limit)
    who = who_for("acme", make_key("acme"))
    fresh_api(Services.build(ApiSettings(echo_chunk_delay_ms=1)))
    replies: list[int] = []

    def one(i: int) -> None:
        reply = chat(who, f"client {i:02d} " + "word " * 20, stream=True, max_tokens=40)
        replies.append(reply.status)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    mtok = tenant_item(tables)["mtok"]
    billed = sum(e["prompt_tokens"] + e["completion_tokens"] for e in events_table(tables))
    assert mtok <= limit  # 0 overshoot
    assert mtok == billed  # every streamed token counted once
    assert replies.count(200) >= 1 and set(replies) <= {200, 429}
