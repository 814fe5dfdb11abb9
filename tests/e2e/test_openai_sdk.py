"""The official OpenAI SDK against the local stack: answers, and the SDK's exception types
for 401, 403 and 429 (docs/design.md, "Operations and scopes")."""

from __future__ import annotations

import uuid
from typing import Any

import openai
import pytest
from openai import OpenAI

from tests.e2e.conftest import Stack

HI = [{"role": "user", "content": "hello tollgate"}]


def client(stack: Stack, key: str) -> OpenAI:
    return OpenAI(base_url=f"{stack.url}/v1", api_key=key, max_retries=0, timeout=30)


@pytest.fixture(scope="module")
def tenant(stack: Stack) -> str:
    name = f"sdk-{uuid.uuid4().hex[:8]}"
    stack.cli("plans", "create", name, "--requests-per-minute", "3", "--models", "tollgate-echo")
    stack.cli("tenants", "create", name, "--plan", name)
    return name


def key(stack: Stack, tenant: str, *args: str) -> dict[str, Any]:
    out = stack.cli("keys", "create", "--tenant", tenant, *args)
    assert isinstance(out, dict)
    return out


def test_chat_completion_and_models(stack: Stack, tenant: str) -> None:
    c = client(stack, key(stack, tenant)["secret"])
    reply = c.chat.completions.create(model="tollgate-echo", messages=HI, max_tokens=64)
    assert reply.choices[0].message.content == "hello tollgate"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    assert [m.id for m in c.models.list()] == ["tollgate-echo"]


def test_max_tokens_caps_completion(stack: Stack, tenant: str) -> None:
    c = client(stack, key(stack, tenant)["secret"])
    reply = c.chat.completions.create(model="tollgate-echo", messages=HI, max_tokens=1)
    assert reply.usage is not None and reply.usage.completion_tokens == 1


def test_streaming(stack: Stack, tenant: str) -> None:
    c = client(stack, key(stack, tenant)["secret"])
    stream = c.chat.completions.create(model="tollgate-echo", messages=HI, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "hello tollgate"


def test_401_is_authentication_error(stack: Stack) -> None:
    with pytest.raises(openai.AuthenticationError) as err:
        client(stack, "tg_live_" + "x" * 38).models.list()
    assert err.value.code == "invalid_api_key"


def test_403_is_permission_denied(stack: Stack, tenant: str) -> None:
    created = key(stack, tenant)
    stack.cli("keys", "revoke", created["key_id"], "--reason", "sdk e2e")
    with pytest.raises(openai.PermissionDeniedError) as err:
        client(stack, created["secret"]).chat.completions.create(model="tollgate-echo", messages=HI)
    assert err.value.code == "key_revoked"


def test_test_key_cannot_reach_fine_tuning(stack: Stack, tenant: str) -> None:
    c = client(stack, key(stack, tenant, "--env", "test")["secret"])
    with pytest.raises(openai.PermissionDeniedError) as err:
        c.fine_tuning.jobs.list()
    assert err.value.code == "wrong_environment"


def test_429_is_rate_limit_error_with_retry_after(stack: Stack, tenant: str) -> None:
    c = client(stack, key(stack, tenant)["secret"])
    with pytest.raises(openai.RateLimitError) as err:  # 3 a minute: even across a minute
        for _ in range(7):  # boundary, the 7th call at the latest is the 4th in its minute
            c.models.list()
    assert err.value.code == "rate_limit_exceeded"
    assert 1 <= int(err.value.response.headers["retry-after"]) <= 60
