"""The official OpenAI SDK against the local stack (issue 13): streamed chat completions with
``include_usage``, streamed Responses, embeddings and ``models.retrieve``; each request
leaves one usage event with the tokens the SDK was told."""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

import openai
import pytest
from openai import OpenAI

from tests.e2e.conftest import Stack

TEXT = "streamed through the local gateway one word at a time"


def client(stack: Stack, key: str) -> OpenAI:
    return OpenAI(base_url=f"{stack.url}/v1", api_key=key, max_retries=0, timeout=30)


@pytest.fixture(scope="module")
def tenant(stack: Stack) -> str:
    name = f"sdks-{uuid.uuid4().hex[:8]}"
    stack.cli("plans", "create", name, "--models", "tollgate-echo")
    stack.cli("tenants", "create", name, "--plan", name)
    return name


@pytest.fixture(scope="module")
def key(stack: Stack, tenant: str) -> dict[str, Any]:
    out = stack.cli("keys", "create", "--tenant", tenant)
    assert isinstance(out, dict)
    return out


def usage_rows(stack: Stack, tenant: str, key_id: str, requests: int) -> list[dict[str, Any]]:
    """The key's usage rows once the aggregator has rolled up ``requests`` events."""
    rows: list[dict[str, Any]] = []
    for _ in range(150):
        rows = stack.cli("usage", "--tenant", tenant, "--key", key_id, "--granularity", "month")
        if sum(int(r["requests"]) for r in rows) >= requests:
            return rows
        time.sleep(0.2)
    raise AssertionError(f"usage rows never counted {requests} requests: {rows}")


def test_streamed_chat_is_incremental_with_usage_in_the_last_chunk(
    stack: Stack, key: dict[str, Any]
) -> None:
    c = client(stack, key["secret"])
    chunks = list(
        c.chat.completions.create(
            model="tollgate-echo",
            messages=[{"role": "user", "content": TEXT}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    pieces = [ch.choices[0].delta.content for ch in chunks if ch.choices and
              ch.choices[0].delta.content]  # fmt: skip
    assert "".join(pieces) == TEXT
    assert len(pieces) == len(TEXT.split())  # one chunk per word, not one body
    last = chunks[-1]
    assert last.usage is not None and last.choices == []
    assert last.usage.completion_tokens > 0 and last.usage.prompt_tokens > 0
    assert all(ch.usage is None for ch in chunks[:-1])
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens


def test_streamed_responses(stack: Stack, key: dict[str, Any]) -> None:
    c = client(stack, key["secret"])
    events = list(c.responses.create(model="tollgate-echo", input=TEXT, stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1 and "".join(deltas) == TEXT
    done = events[-1].response
    assert done.output_text == TEXT
    assert done.usage is not None and done.usage.output_tokens > 0


def test_embeddings(stack: Stack, key: dict[str, Any]) -> None:
    c = client(stack, key["secret"])
    out = c.embeddings.create(model="tollgate-echo", input=["one", "two words"], dimensions=8)
    assert [d.index for d in out.data] == [0, 1]
    for d in out.data:
        assert len(d.embedding) == 8
        assert math.isclose(math.sqrt(sum(v * v for v in d.embedding)), 1.0, rel_tol=1e-6)
    again = c.embeddings.create(model="tollgate-echo", input="one", dimensions=8)
    assert again.data[0].embedding == out.data[0].embedding  # deterministic
    assert out.usage.prompt_tokens > 0


def test_models_retrieve(stack: Stack, key: dict[str, Any]) -> None:
    c = client(stack, key["secret"])
    assert c.models.retrieve("tollgate-echo").id == "tollgate-echo"
    with pytest.raises(openai.NotFoundError):
        c.models.retrieve("gpt-4o")


def test_every_request_is_metered(stack: Stack, tenant: str) -> None:
    fresh = stack.cli("keys", "create", "--tenant", tenant)
    c = client(stack, fresh["secret"])
    stream = c.chat.completions.create(
        model="tollgate-echo", messages=[{"role": "user", "content": TEXT}], stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    billed = [ch.usage for ch in stream if ch.usage is not None][-1]
    [row] = usage_rows(stack, tenant, fresh["key_id"], 1)
    assert row["requests"] == 1 and row["estimated"] == 0
    assert row["prompt_tokens"] == billed.prompt_tokens
    assert row["completion_tokens"] == billed.completion_tokens
