"""Model routing, plan views and the providers' request/response mapping (no network:
Bedrock through botocore's Stubber, the upstream's parser on canned answers)."""

from __future__ import annotations

from typing import Any

import pytest

from functions.api.errors import ProviderError, ProviderRejected
from functions.api.plans import PlanView
from functions.api.providers import Providers, route
from functions.api.providers.base import ChatMessage, ModelCall
from functions.api.providers.bedrock import BedrockProvider, converse_request
from functions.api.providers.upstream import parse_response, request_body


@pytest.mark.parametrize(
    ("model", "kind", "target"),
    [
        ("tollgate-echo", "echo", "tollgate-echo"),
        ("bedrock:anthropic.claude-3-haiku-20240307-v1:0", "bedrock",
         "anthropic.claude-3-haiku-20240307-v1:0"),
        ("anthropic.claude-3-5-sonnet-20240620-v1:0", "bedrock",
         "anthropic.claude-3-5-sonnet-20240620-v1:0"),
        ("us.amazon.nova-lite-v1:0", "bedrock", "us.amazon.nova-lite-v1:0"),
        ("upstream:gpt-4o-mini", "upstream", "gpt-4o-mini"),
    ],
)  # fmt: skip
def test_routing(model: str, kind: str, target: str) -> None:
    found = route(model)
    assert found is not None and (found.kind, found.model) == (kind, target)


@pytest.mark.parametrize("model", ["gpt-4o", "bedrock:", "upstream:", "echo", "claude.anthropic"])
def test_unroutable(model: str) -> None:
    assert route(model) is None


def test_plan_view_models_and_tools() -> None:
    models = ["gpt-4o", "upstream:x", "tollgate-echo", "upstream:x"]
    plan = PlanView.from_item({"name": "p", "models": models, "tools": ["calculator"]})
    assert plan.models_for("live") == ("tollgate-echo", "upstream:x")
    assert plan.models_for("test") == ("tollgate-echo",)
    assert plan.allows_tool("calculator") and not plan.allows_tool("utc_now")
    assert PlanView.from_item({"name": "q"}).allows_tool("utc_now")  # absent: every tool


def _call(*messages: tuple[str, str], **kw: Any) -> ModelCall:
    return ModelCall("m", tuple(ChatMessage(r, t) for r, t in messages), kw.pop("max_tokens", 8),
                     **kw)  # fmt: skip


def test_converse_request_merges_turns_and_lifts_system() -> None:
    req = converse_request(
        _call(("developer", "rules"), ("user", "a"), ("tool", "b"), ("assistant", ""),
              ("assistant", "c"), top_p=0.9)
    )  # fmt: skip
    assert req == {
        "modelId": "m",
        "system": [{"text": "rules"}],
        "messages": [{"role": "user", "content": [{"text": "a\n\nb"}]},
                     {"role": "assistant", "content": [{"text": "c"}]}],
        "inferenceConfig": {"maxTokens": 8, "topP": 0.9},
    }  # fmt: skip
    with pytest.raises(ProviderRejected):
        converse_request(_call(("system", "only rules")))


def test_bedrock_through_stubber() -> None:
    import botocore.session
    from botocore.stub import Stubber

    client = botocore.session.get_session().create_client(
        "bedrock-runtime", region_name="eu-west-1"
    )
    provider = BedrockProvider(lambda: client)
    with Stubber(client) as stub:
        stub.add_response("converse", {
            "output": {"message": {"role": "assistant", "content": [{"text": "x"}, {"text": "y"}]}},
            "stopReason": "content_filtered",
            "usage": {"inputTokens": 4, "outputTokens": 2, "totalTokens": 6},
            "metrics": {"latencyMs": 1},
        })  # fmt: skip
        out = provider.complete(_call(("user", "hi")))
    assert (out.text, out.prompt_tokens, out.completion_tokens) == ("xy", 4, 2)
    assert out.finish_reason == "content_filter"


def test_upstream_mapping() -> None:
    call = _call(("user", "hi"), stop=("\n",), temperature=0.2)
    assert request_body(call) == {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                                  "max_tokens": 8, "stream": False, "temperature": 0.2,
                                  "stop": ["\n"]}  # fmt: skip
    ok = {"choices": [{"message": {"content": "yo"}, "finish_reason": "length"}],
          "usage": {"prompt_tokens": 5, "completion_tokens": 1}}  # fmt: skip
    out = parse_response(ok, call)
    assert (out.text, out.prompt_tokens, out.completion_tokens, out.finish_reason) == (
        "yo", 5, 1, "length")  # fmt: skip
    bad: Any
    for bad in ({}, {"choices": []}, {"choices": [{"message": {"content": 3}}]}, [1]):
        with pytest.raises(ProviderError):
            parse_response(bad, call)


def test_providers_are_built_once() -> None:
    built: list[int] = []

    def factory() -> Any:
        built.append(1)
        return object()

    providers = Providers({"bedrock": factory})
    assert providers.get("bedrock") is providers.get("bedrock")
    assert built == [1]
    assert providers.get("echo").kind == "echo"


# -- embeddings ------------------------------------------------------------------------------
def test_titan_request_v2_has_dimensions_and_normalize_v1_only_the_text() -> None:
    import json

    from functions.api.providers.bedrock import titan_request

    v2 = titan_request("amazon.titan-embed-text-v2:0", "hi", 256)
    assert json.loads(v2["body"]) == {"inputText": "hi", "dimensions": 256, "normalize": True}
    assert json.loads(titan_request("amazon.titan-embed-text-v1", "hi", 256)["body"]) == {
        "inputText": "hi"
    }


@pytest.mark.parametrize(
    ("model", "ok"),
    [
        ("amazon.titan-embed-text-v2:0", True),
        ("amazon.titan-embed-text-v1", True),
        ("anthropic.claude-3-haiku-20240307-v1:0", False),
        ("amazon.titan-text-express-v1", False),
    ],
)
def test_only_titan_text_embeddings_models_embed_on_bedrock(model: str, ok: bool) -> None:
    from functions.api.errors import ModelNotSupported

    provider = BedrockProvider(lambda: None)
    if ok:
        provider.check_embedding_model(model)
    else:
        with pytest.raises(ModelNotSupported):
            provider.check_embedding_model(model)


def test_upstream_embeddings_parse_in_index_order_and_refuse_a_missing_vector() -> None:
    from functions.api.providers.base import EmbeddingCall
    from functions.api.providers.upstream import parse_embeddings

    call = EmbeddingCall(model="m", inputs=("a", "b"))
    data: dict[str, Any] = {
        "data": [{"index": 1, "embedding": [2.0]}, {"index": 0, "embedding": "AACAPw=="}],
        "usage": {"prompt_tokens": 2},
    }
    out = parse_embeddings(data, call, upper_bound=99)
    assert out.vectors == ((1.0,), (2.0,)) and out.prompt_tokens == 2 and not out.estimated
    del data["usage"]
    assert parse_embeddings(data, call, upper_bound=99).prompt_tokens == 99
    assert parse_embeddings(data, call, upper_bound=99).estimated
    with pytest.raises(ProviderError):
        parse_embeddings({"data": data["data"][:1]}, call, upper_bound=99)
