"""The official ``openai`` package as the client of the API handler (no network: an httpx
transport turns each SDK request into the API Gateway proxy event the stack would send)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import openai
import pytest

from functions.api import handler as api
from tests.integration.api_events import (
    LambdaContext,
    Who,
    body_text,
    event,
    events_table,
    fresh_api,
    make_key,
    make_plan,
    make_tenant,
    who_for,
)

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

BEDROCK = "bedrock:anthropic.claude-3-haiku-20240307-v1:0"


@pytest.fixture(autouse=True)
def tables(dynamodb: Any) -> Iterator[Any]:
    fresh_api()
    yield dynamodb
    api.reset()


def client_for(who: Who) -> openai.OpenAI:
    def send(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        body = request.content.decode() or None
        query = dict(request.url.params) or None
        evt = event(request.method, path, who, raw_body=body, query=query,
                    user_agent=request.headers.get("user-agent", ""))  # fmt: skip
        out = api.handler(evt, LambdaContext())
        headers = [(k, str(v)) for k, v in (out.get("headers") or {}).items()]
        for k, values in (out.get("multiValueHeaders") or {}).items():
            headers += [(k, str(v)) for v in values]
        return httpx.Response(out["statusCode"], headers=headers, text=body_text(out))

    return openai.OpenAI(
        base_url="https://api.example/v1",
        api_key="tg_live_ignored_here",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(send)),
    )


@pytest.fixture
def who(dynamodb: Any) -> Who:
    make_tenant("acme", make_plan(models=["tollgate-echo", BEDROCK]), tokens_per_month=100)
    return who_for("acme", make_key("acme"))


def test_chat_completion(who: Who, tables: Any) -> None:
    client = client_for(who)
    out = client.chat.completions.create(
        model="tollgate-echo", messages=[{"role": "user", "content": "hi"}]
    )
    assert out.choices[0].message.content == "hi"
    assert out.usage is not None
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (1, 1)
    [item] = events_table(tables)
    assert item["user_agent"].startswith("OpenAI/Python")


def test_streaming(who: Who) -> None:
    client = client_for(who)
    stream = client.chat.completions.create(
        model="tollgate-echo",
        messages=[{"role": "user", "content": "stream me please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "stream me please"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4


def test_models_list(who: Who) -> None:
    assert [m.id for m in client_for(who).models.list()] == ["tollgate-echo", BEDROCK]


def test_error_types(who: Who) -> None:
    client = client_for(who)
    msgs: Any = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.NotFoundError) as not_found:
        client.chat.completions.create(model="bedrock:meta.llama3", messages=msgs)
    assert not_found.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="tollgate-echo", messages=msgs, max_tokens=0)
    assert bad.value.param == "max_tokens"
    with pytest.raises(openai.RateLimitError) as quota:
        client.chat.completions.create(model="tollgate-echo", messages=msgs, max_tokens=500)
    assert quota.value.code == "insufficient_quota"

    test_client = client_for(Who(**{**who.__dict__, "environment": "test"}))
    with pytest.raises(openai.PermissionDeniedError) as denied:
        test_client.chat.completions.create(model=BEDROCK, messages=msgs)
    assert denied.value.code == "model_not_allowed_for_test_key"

    limited = client_for(Who(**{**who.__dict__, "verdict": "rate_limit_exceeded",
                                "code": "rate_limit_exceeded", "type": "requests",
                                "message": "Slow down.", "retry_after": "7"}))  # fmt: skip
    with pytest.raises(openai.RateLimitError) as rate:
        limited.chat.completions.create(model="tollgate-echo", messages=msgs)
    assert rate.value.response.headers["retry-after"] == "7"
    assert json.loads(rate.value.response.text)["error"]["message"] == "Slow down."


def test_fine_tuning_jobs(who: Who) -> None:
    from functions.finetune.service import create_job

    job_id = create_job("acme", BEDROCK, "v1")["id"]
    client = client_for(who)
    page = client.fine_tuning.jobs.list()
    assert [j.id for j in page.data] == [job_id]
    job = client.fine_tuning.jobs.retrieve(job_id)
    assert job.model == BEDROCK and job.status == "queued"
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("ftjob-doesnotexist")
