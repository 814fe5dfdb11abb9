"""Each model provider through the API handler: Bedrock's Converse (botocore Stubber: moto
does not emulate Bedrock's runtime) and an OpenAI-compatible upstream (a fake server on
127.0.0.1, its URL and key in a Secrets Manager secret on moto)."""

from __future__ import annotations

import base64
import io
import json
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from functions.api import handler as api
from functions.api.config import ApiSettings
from functions.api.providers.bedrock import BedrockProvider
from functions.api.providers.upstream import SecretCache, UpstreamProvider, secretsmanager_reader
from functions.api.services import Services
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

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
MODELS = ["tollgate-echo", f"bedrock:{CLAUDE}", "us.meta.llama3-2-1b-instruct-v1:0",
          "upstream:gpt-4o-mini"]  # fmt: skip


@pytest.fixture(autouse=True)
def tables(dynamodb: Any) -> Iterator[Any]:
    fresh_api()
    yield dynamodb
    api.reset()


@pytest.fixture
def who(dynamodb: Any) -> Who:
    plan = make_plan(
        models=MODELS, price_prompt_micros_per_1k=3000, price_completion_micros_per_1k=15000
    )
    make_tenant("acme", plan, tokens_per_month=100_000)
    return who_for("acme", make_key("acme"))


# -- Bedrock -----------------------------------------------------------------------------
@pytest.fixture
def bedrock() -> Iterator[Any]:
    import botocore.session
    from botocore.stub import Stubber

    client = botocore.session.get_session().create_client(
        "bedrock-runtime", region_name="us-east-1"
    )
    with Stubber(client) as stub:
        install("bedrock", BedrockProvider(lambda: client))
        yield stub
        stub.assert_no_pending_responses()


def converse_response(text: str, inp: int, out: int, stop: str = "end_turn") -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": stop,
        "usage": {"inputTokens": inp, "outputTokens": out, "totalTokens": inp + out},
        "metrics": {"latencyMs": 120},
    }


def test_bedrock_converse_maps_the_request_and_bills_reported_tokens(
    who: Who, bedrock: Any, tables: Any
) -> None:
    bedrock.add_response(
        "converse",
        converse_response("Paris.", 12, 7),
        expected_params={
            "modelId": CLAUDE,
            "system": [{"text": "be brief"}],
            "messages": [
                {"role": "user", "content": [{"text": "capital of France?\n\nanswer in a word"}]},
                {"role": "assistant", "content": [{"text": "ok"}]},
                {"role": "user", "content": [{"text": "go"}]},
            ],
            "inferenceConfig": {"maxTokens": 50, "temperature": 0.5, "stopSequences": ["\n"]},
        },
    )
    body = {
        "model": f"bedrock:{CLAUDE}",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "capital of France?"},
            {"role": "user", "content": "answer in a word"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": ""},
            {"role": "user", "content": "go"},
        ],
        "max_tokens": 50,
        "temperature": 0.5,
        "stop": "\n",
    }
    reply = call(event("POST", "/v1/chat/completions", who, body=body))
    assert reply.status == 200, reply.text
    out = reply.json
    assert out["model"] == f"bedrock:{CLAUDE}"
    assert out["choices"][0]["message"]["content"] == "Paris."
    assert out["usage"] == {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}
    [item] = events_table(tables)
    assert item["model"] == f"bedrock:{CLAUDE}"
    assert (item["prompt_tokens"], item["completion_tokens"]) == (12, 7)
    assert item["cost_micros"] == 141  # (12 * 3000 + 7 * 15000) / 1000 = 141
    assert tenant_item(tables)["mtok"] == 19  # the reservation settled to the reported usage


def test_bare_bedrock_id_routes_to_bedrock(who: Who, bedrock: Any) -> None:
    model = "us.meta.llama3-2-1b-instruct-v1:0"
    bedrock.add_response(
        "converse",
        converse_response("hi", 3, 1, stop="max_tokens"),
        expected_params={
            "modelId": model,
            "messages": [{"role": "user", "content": [{"text": "hi"}]}],
            "inferenceConfig": {"maxTokens": 1},
        },
    )
    reply = chat(who, "hi", model=model, max_tokens=1)
    assert reply.status == 200
    assert reply.json["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    ("code", "http", "status", "error"),
    [
        ("ValidationException", 400, 400, "model_rejected_request"),
        ("ThrottlingException", 429, 503, "model_unavailable"),
        ("ModelTimeoutException", 408, 504, "provider_timeout"),
        ("AccessDeniedException", 403, 502, "provider_error"),
    ],
)
def test_bedrock_errors_release_or_bill_the_upper_bound(
    who: Who, bedrock: Any, tables: Any, code: str, http: int, status: int, error: str
) -> None:
    bedrock.add_client_error(
        "converse", service_error_code=code, service_message="nope", http_status_code=http
    )
    reply = chat(who, "hi", model=f"bedrock:{CLAUDE}", max_tokens=100)
    assert reply.status == status, reply.text
    assert reply.error["code"] == error
    [item] = events_table(tables)
    assert item["status"] == "error" and item["error_class"] == error
    if error == "provider_timeout":  # the model ran: its upper bound, marked estimated
        assert item["estimated"] is True and item["completion_tokens"] == 100
        assert tenant_item(tables)["mtok"] == item["prompt_tokens"] + 100
    else:  # refused before running: released
        assert tenant_item(tables)["mtok"] == 0 and "estimated" not in item


# -- the OpenAI-compatible upstream ------------------------------------------------------
class FakeUpstream:
    """An OpenAI-compatible server on 127.0.0.1 with scripted behaviour."""

    def __init__(self, api_key: str = "sk-upstream-1") -> None:
        self.api_key = api_key
        self.mode = "ok"
        self.billed = 0
        # Extra usage fields (OpenAI's prompt/completion token details) of every answer.
        self.usage_details: dict[str, Any] = {}
        self.requests: list[dict[str, Any]] = []
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}/v1"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        body = json.loads(request.get_data() or b"{}")
        self.requests.append(
            {"path": request.path, "auth": request.headers.get("Authorization"), "body": body}
        )
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            resp = Response(json.dumps({"error": {"message": "bad key"}}), status=401)
        elif self.mode.isdigit():
            resp = Response(json.dumps({"error": {"message": "boom"}}), status=int(self.mode))
        elif request.path.endswith("/embeddings"):
            resp = Response(json.dumps(self._embeddings(body)), content_type="application/json")
        elif body.get("stream"):
            resp = Response(self._sse(body), content_type="text/event-stream")
        else:
            if self.mode in ("slow", "stall"):
                self.billed = self.WORDS  # it ran the model; the client timed out
                time.sleep(1.5)
            if self.mode == "drop":
                self.billed = self.WORDS
                return Response(self._cut(), content_type="application/json")(
                    environ, start_response
                )
            reply = body["messages"][-1]["content"].upper()
            answer: dict[str, Any] = {
                "id": "chatcmpl-up",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                             "finish_reason": "stop"}],
            }  # fmt: skip
            if self.mode != "no_usage":
                answer["usage"] = {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11,
                                   **self.usage_details}  # fmt: skip
            resp = Response(json.dumps(answer), content_type="application/json")
        return resp(environ, start_response)

    @staticmethod
    def embedding(text: str, dimensions: int) -> list[float]:
        """The fake's vector for ``text``: its length, then 0.5, 0.25, ..."""
        return [float(len(text))] + [0.5**i for i in range(1, dimensions)]

    def _embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        """One vector per input (listed in reverse: clients order by ``index``); base64 of
        float32 when asked; usage: one token per byte (none in mode ``no_usage``)."""
        dims = int(body.get("dimensions") or 4)
        data = []
        for i, text in enumerate(body["input"]):
            vector: Any = self.embedding(text, dims)
            if body.get("encoding_format") == "base64":
                vector = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": vector})
        answer: dict[str, Any] = {"object": "list", "data": data[::-1], "model": body["model"]}
        if self.mode != "no_usage":
            n = sum(len(t.encode()) for t in body["input"])
            answer["usage"] = {"prompt_tokens": n, "total_tokens": n}
        if self.mode == "short":
            answer["data"] = data[:-1]
        return answer

    WORDS = 6  # a streamed answer: six chunks
    STALL_AFTER = 3  # "stall" and "drop" stop after this many chunks

    def _cut(self) -> Iterator[bytes]:
        yield b'{"id": "chatcmpl-up", "choices": [{"index": 0, "mess'
        raise ConnectionAbortedError("the upstream dropped the answer")

    def _sse(self, body: dict[str, Any]) -> Iterator[bytes]:
        """Chunks of one token each; the usage chunk when asked; [DONE]. ``stall``: stops
        sending after STALL_AFTER chunks (the client times out); ``drop``: closes the
        connection there. ``billed`` is what this upstream would bill (what it produced)."""
        self.billed = 0

        def event(data: dict[str, Any]) -> bytes:
            return f"data: {json.dumps(data)}\n\n".encode()

        base = {"id": "chatcmpl-up", "object": "chat.completion.chunk", "model": body["model"]}
        for i in range(self.WORDS):
            if self.mode in ("stall", "drop") and i == self.STALL_AFTER:
                if self.mode == "stall":
                    time.sleep(3)
                raise ConnectionAbortedError("the upstream dropped the stream")
            self.billed += 1
            delta = {"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": None}
            yield event({**base, "choices": [delta]})
        yield event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 9, "completion_tokens": self.WORDS,
                     "total_tokens": 9 + self.WORDS, **self.usage_details}  # fmt: skip
            yield event({**base, "choices": [], "usage": usage})
        yield b"data: [DONE]\n\n"


@pytest.fixture
def upstream(moto_server: Any) -> Iterator[FakeUpstream]:
    server = FakeUpstream()
    yield server
    server.close()


def _secret(upstream: FakeUpstream, name: str = "tollgate/upstream") -> str:
    import boto3

    client = boto3.client("secretsmanager", region_name="us-east-1")
    value = json.dumps({"base_url": upstream.url, "api_key": upstream.api_key})
    try:
        return str(client.create_secret(Name=name, SecretString=value)["ARN"])
    except client.exceptions.ResourceExistsException:
        client.put_secret_value(SecretId=name, SecretString=value)
        return str(client.describe_secret(SecretId=name)["ARN"])


def _with_upstream(arn: str | None, reads: list[int], timeout_s: float = 5.0) -> None:
    services = Services.build(ApiSettings(upstream_secret_arn=arn, model_timeout_s=timeout_s))
    fresh_api(services)
    if arn:
        read = secretsmanager_reader(arn)

        def counted() -> str:
            reads.append(1)
            return read()

        install("upstream", UpstreamProvider(SecretCache(counted, ttl_s=300)))


def test_upstream_gets_the_model_and_max_tokens_and_the_secret_once(
    who: Who, upstream: FakeUpstream, tables: Any
) -> None:
    reads: list[int] = []
    _with_upstream(_secret(upstream), reads)
    for _ in range(3):
        reply = chat(who, "shout this", model="upstream:gpt-4o-mini", max_tokens=20)
        assert reply.status == 200, reply.text
        assert reply.json["choices"][0]["message"]["content"] == "SHOUT THIS"
        assert reply.json["usage"] == {"prompt_tokens": 9, "completion_tokens": 2,
                                       "total_tokens": 11}  # fmt: skip
    assert len(reads) == 1  # cached in the container
    first = upstream.requests[0]
    assert first["path"] == "/v1/chat/completions"
    assert first["auth"] == "Bearer sk-upstream-1"
    assert first["body"]["model"] == "gpt-4o-mini"
    assert first["body"]["max_tokens"] == 20
    assert first["body"]["messages"] == [{"role": "user", "content": "shout this"}]
    assert tenant_item(tables)["mtok"] == 33
    assert {e["model"] for e in events_table(tables)} == {"upstream:gpt-4o-mini"}


def test_rotated_upstream_key_is_picked_up_after_one_refusal(
    who: Who, upstream: FakeUpstream, tables: Any
) -> None:
    reads: list[int] = []
    _with_upstream(_secret(upstream), reads)
    assert chat(who, "a", model="upstream:gpt-4o-mini").status == 200
    upstream.api_key = "sk-upstream-2"
    _secret(upstream)  # the operator rotates the secret
    reply = chat(who, "b", model="upstream:gpt-4o-mini")
    assert reply.status == 502 and reply.error["code"] == "provider_error"
    assert "sk-upstream" not in reply.text
    assert chat(who, "c", model="upstream:gpt-4o-mini").status == 200
    assert len(reads) == 2


@pytest.mark.parametrize(
    ("mode", "status", "code"),
    [
        ("500", 503, "model_unavailable"),
        ("429", 503, "model_unavailable"),
        ("400", 400, "model_rejected_request"),
        ("404", 502, "provider_error"),
    ],
)
def test_upstream_failures_release_the_reservation(
    who: Who, upstream: FakeUpstream, tables: Any, mode: str, status: int, code: str
) -> None:
    _with_upstream(_secret(upstream), [], timeout_s=0.5)
    upstream.mode = mode
    reply = chat(who, "x", model="upstream:gpt-4o-mini", max_tokens=10)
    assert reply.status == status, reply.text
    assert reply.error["code"] == code
    assert tenant_item(tables)["mtok"] == 0
    [item] = events_table(tables)
    assert item.get("error_class") == code


def test_upstream_timeout_bills_the_upper_bound_marked_estimated(
    who: Who, upstream: FakeUpstream, tables: Any
) -> None:
    """The upstream may have generated (and billed) every token: never bill 0."""
    _with_upstream(_secret(upstream), [], timeout_s=0.5)
    upstream.mode = "slow"
    reply = chat(who, "x", model="upstream:gpt-4o-mini", max_tokens=10)
    assert reply.status == 504 and reply.error["code"] == "provider_timeout"
    [item] = events_table(tables)
    assert item["estimated"] is True and item["status"] == "error"
    assert (item["prompt_tokens"], item["completion_tokens"]) == (32 + 1 + 16, 10)
    assert tenant_item(tables)["mtok"] == 32 + 1 + 16 + 10


def test_upstream_without_usage_is_charged_its_upper_bound(
    who: Who, upstream: FakeUpstream, tables: Any
) -> None:
    _with_upstream(_secret(upstream), [])
    upstream.mode = "no_usage"
    reply = chat(who, "hey", model="upstream:gpt-4o-mini", max_tokens=10)
    assert reply.status == 200
    usage = reply.json["usage"]
    assert usage["prompt_tokens"] == 32 + 3 + 16  # template + bytes + per message
    assert usage["completion_tokens"] == 3  # bytes of "HEY", within max_tokens
    assert tenant_item(tables)["mtok"] == usage["total_tokens"]


def test_upstream_not_configured_is_503_and_releases(who: Who, tables: Any) -> None:
    _with_upstream(None, [])
    reply = chat(who, "x", model="upstream:gpt-4o-mini", max_tokens=10)
    assert reply.status == 503
    assert reply.error["code"] == "model_unavailable"
    assert reply.headers["retry-after"] == "1"
    assert tenant_item(tables)["mtok"] == 0


def test_upstream_secret_without_a_value_is_503(who: Who, tables: Any, moto_server: Any) -> None:
    import boto3

    client = boto3.client("secretsmanager", region_name="us-east-1")
    arn = client.create_secret(Name="tollgate/unset", SecretString="Xq9-generated-by-cdk")["ARN"]
    _with_upstream(arn, [])
    reply = chat(who, "x", model="upstream:gpt-4o-mini", max_tokens=10)
    assert reply.status == 503 and reply.error["code"] == "model_unavailable"
    assert "Xq9" not in reply.text
    assert tenant_item(tables)["mtok"] == 0


# -- embeddings ----------------------------------------------------------------------------
TITAN = "amazon.titan-embed-text-v2:0"


def embed(who: Who, model: str, inputs: Any, **extra: Any) -> Any:
    return call(event("POST", "/v1/embeddings", who, body={"model": model, "input": inputs,
                                                           **extra}))  # fmt: skip


@pytest.fixture
def embed_who(dynamodb: Any) -> Who:
    plan = make_plan(models=[*MODELS, TITAN, "upstream:text-embedding-3-small"],
                     price_prompt_micros_per_1k=3000)  # fmt: skip
    make_tenant("acme", plan, tokens_per_month=100_000)
    return who_for("acme", make_key("acme"))


def titan_response(vector: list[float], count: int) -> dict[str, Any]:
    from botocore.response import StreamingBody

    raw = json.dumps({"embedding": vector, "inputTextTokenCount": count}).encode()
    return {"body": StreamingBody(io.BytesIO(raw), len(raw)), "contentType": "application/json"}


def titan_params(text: str, **body: Any) -> dict[str, Any]:
    return {
        "modelId": TITAN,
        "body": json.dumps({"inputText": text, **body}).encode(),
        "contentType": "application/json",
        "accept": "application/json",
    }


def test_bedrock_titan_embeddings_one_call_per_input_billed_as_reported(
    embed_who: Who, bedrock: Any, tables: Any
) -> None:
    bedrock.add_response(
        "invoke_model",
        titan_response([0.6, 0.8], 3),
        expected_params=titan_params("hello", dimensions=256, normalize=True),
    )
    bedrock.add_response("invoke_model", titan_response([1.0, 0.0], 5),
                         expected_params=titan_params("big world", dimensions=256,
                                                      normalize=True))  # fmt: skip
    reply = embed(embed_who, TITAN, ["hello", "big world"], dimensions=256)
    assert reply.status == 200, reply.text
    out = reply.json
    assert [d["embedding"] for d in out["data"]] == [[0.6, 0.8], [1.0, 0.0]]
    assert [d["index"] for d in out["data"]] == [0, 1]
    assert out["model"] == TITAN
    assert out["usage"] == {"prompt_tokens": 8, "total_tokens": 8}
    [item] = events_table(tables)
    assert (item["operation"], item["status"]) == ("embeddings.create", "ok")
    assert (item["prompt_tokens"], item["completion_tokens"]) == (8, 0)
    assert item["cost_micros"] == 24 and "estimated" not in item  # 8 * 3000 / 1000
    assert tenant_item(tables)["mtok"] == 8


def test_bedrock_titan_embeddings_base64_without_dimensions(embed_who: Who, bedrock: Any) -> None:
    bedrock.add_response("invoke_model", titan_response([0.5, -0.25], 1),
                         expected_params=titan_params("x", normalize=True))  # fmt: skip
    reply = embed(embed_who, TITAN, "x", encoding_format="base64")
    assert reply.status == 200, reply.text
    raw = base64.b64decode(reply.json["data"][0]["embedding"])
    assert struct.unpack("<2f", raw) == (0.5, -0.25)


def test_bedrock_chat_model_cannot_embed_400_nothing_reserved(
    embed_who: Who, bedrock: Any, tables: Any
) -> None:
    reply = embed(embed_who, f"bedrock:{CLAUDE}", "x")
    assert reply.status == 400, reply.text
    assert reply.error["code"] == "model_not_supported" and reply.error["param"] == "model"
    assert "Titan" in reply.error["message"]
    [item] = events_table(tables)
    assert item["error_class"] == "model_not_supported" and item["prompt_tokens"] == 0
    assert tenant_item(tables)["mtok"] == 0


@pytest.mark.parametrize(
    ("first_ok", "code", "http", "status", "error", "billed"),
    [
        (False, "ThrottlingException", 429, 503, "model_unavailable", False),
        (False, "ModelTimeoutException", 408, 504, "provider_timeout", True),
        (True, "ThrottlingException", 429, 502, "provider_error", True),  # input 1 ran
    ],
)
def test_bedrock_embeddings_errors_release_or_bill_the_upper_bound(
    embed_who: Who, bedrock: Any, tables: Any, first_ok: bool, code: str, http: int,
    status: int, error: str, billed: bool,
) -> None:  # fmt: skip
    if first_ok:
        bedrock.add_response("invoke_model", titan_response([1.0], 2))
    bedrock.add_client_error(
        "invoke_model", service_error_code=code, service_message="nope", http_status_code=http
    )
    reply = embed(embed_who, TITAN, ["ab", "cd"])
    assert reply.status == status, reply.text
    assert reply.error["code"] == error
    [item] = events_table(tables)
    assert item["error_class"] == error
    if billed:  # the upper bound: the template, 2 bytes per input and per-message tokens
        assert item["estimated"] is True and item["prompt_tokens"] == 32 + 2 * (2 + 16)
        assert tenant_item(tables)["mtok"] == item["prompt_tokens"]
    else:
        assert "estimated" not in item and tenant_item(tables)["mtok"] == 0


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_upstream_embeddings_pass_the_request_and_bill_reported_tokens(
    embed_who: Who, upstream: FakeUpstream, tables: Any, encoding: str
) -> None:
    _with_upstream(_secret(upstream), [])
    model = "upstream:text-embedding-3-small"
    reply = embed(embed_who, model, ["hello", "hi"], dimensions=3, encoding_format=encoding)
    assert reply.status == 200, reply.text
    [sent] = upstream.requests
    assert sent["path"] == "/v1/embeddings" and sent["auth"] == "Bearer sk-upstream-1"
    assert sent["body"] == {"model": "text-embedding-3-small", "input": ["hello", "hi"],
                            "dimensions": 3, "encoding_format": encoding}  # fmt: skip
    got = [d["embedding"] for d in reply.json["data"]]
    if encoding == "base64":
        got = [list(struct.unpack("<3f", base64.b64decode(g))) for g in got]
    assert got == [FakeUpstream.embedding("hello", 3), FakeUpstream.embedding("hi", 3)]
    assert reply.json["usage"] == {"prompt_tokens": 7, "total_tokens": 7}
    [item] = events_table(tables)
    assert item["model"] == model and item["prompt_tokens"] == 7 and "estimated" not in item
    assert tenant_item(tables)["mtok"] == 7


@pytest.mark.parametrize(
    ("mode", "status", "code", "billed"),
    [
        ("no_usage", 200, None, True),
        ("short", 502, "provider_error", True),  # one vector missing: unreadable
        ("400", 400, "model_rejected_request", False),
        ("503", 503, "model_unavailable", False),
    ],
)
def test_upstream_embeddings_failures_release_or_bill_the_upper_bound(
    embed_who: Who, upstream: FakeUpstream, tables: Any, mode: str, status: int,
    code: str | None, billed: bool,
) -> None:  # fmt: skip
    _with_upstream(_secret(upstream), [])
    upstream.mode = mode
    reply = embed(embed_who, "upstream:text-embedding-3-small", ["abc", "de"])
    assert reply.status == status, reply.text
    [item] = events_table(tables)
    assert item.get("error_class") == code
    bound = 32 + (3 + 16) + (2 + 16)
    if billed:
        assert item["estimated"] is True and item["prompt_tokens"] == bound
        assert tenant_item(tables)["mtok"] == bound
    else:
        assert "estimated" not in item and tenant_item(tables)["mtok"] == 0
    if mode == "no_usage":
        assert reply.json["usage"]["prompt_tokens"] == bound


def test_test_key_cannot_embed_with_a_real_provider(embed_who: Who, tables: Any) -> None:
    test_who = Who(**{**embed_who.__dict__, "environment": "test"})
    for model in (TITAN, "upstream:text-embedding-3-small"):
        reply = embed(test_who, model, "x")
        assert reply.status == 403 and reply.error["code"] == "model_not_allowed_for_test_key"
    assert tenant_item(tables)["mtok"] == 0
