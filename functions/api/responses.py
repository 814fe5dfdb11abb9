"""OpenAI-shaped response bodies (what the official SDK parses)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Final

from functions.api.chat import ChatResult

SSE_PIECE_BYTES: Final = 64


def _usage(result: ChatResult) -> dict[str, int]:
    c = result.completion
    return {
        "prompt_tokens": c.prompt_tokens,
        "completion_tokens": c.completion_tokens,
        "total_tokens": c.total_tokens,
    }


def chat_completion(result: ChatResult) -> dict[str, Any]:
    return {
        "id": result.id,
        "object": "chat.completion",
        "created": result.created,
        "model": result.model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": result.completion.text,
                    "refusal": None,
                },
                "logprobs": None,
                "finish_reason": result.completion.finish_reason,
            }
        ],
        "usage": _usage(result),
        "system_fingerprint": None,
    }


def _pieces(text: str) -> Iterator[str]:
    """``text`` in pieces of about :data:`SSE_PIECE_BYTES` characters, split after spaces."""
    start = 0
    while start < len(text):
        end = min(len(text), start + SSE_PIECE_BYTES)
        if end < len(text):
            space = text.rfind(" ", start, end)
            if space > start:
                end = space + 1
        yield text[start:end]
        start = end


def chat_completion_sse(result: ChatResult, *, include_usage: bool) -> str:
    """The completion as server-sent events, as OpenAI streams it, ending in ``[DONE]``.

    A REST API's Lambda proxy integration returns a whole body, so the events arrive
    together; clients parse them exactly as a live stream. Usage is counted the same way as
    without streaming; ``stream_options.include_usage`` adds the final usage chunk.
    """
    base = {
        "id": result.id,
        "object": "chat.completion.chunk",
        "created": result.created,
        "model": result.model,
        "system_fingerprint": None,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            **base,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            body["usage"] = None
        return body

    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": piece}) for piece in _pieces(result.completion.text)]
    events.append(chunk({}, result.completion.finish_reason))
    if include_usage:
        events.append({**base, "choices": [], "usage": _usage(result)})
    lines = [f"data: {json.dumps(e, separators=(',', ':'))}\n\n" for e in events]
    return "".join(lines) + "data: [DONE]\n\n"


def model_list(models: tuple[str, ...]) -> dict[str, Any]:
    def owner(model_id: str) -> str:
        if model_id.startswith("upstream:"):
            return "upstream"
        return "tollgate" if model_id == "tollgate-echo" else "bedrock"

    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": 0, "owned_by": owner(m)} for m in models],
    }
