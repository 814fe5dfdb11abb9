"""OpenAI-shaped response bodies (what the official SDK parses)."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from functions.api.errors import ApiError, InternalError
from functions.pricing.money import usd

if TYPE_CHECKING:
    from functions.api.chat import ChatResult, ChatStream
    from functions.api.schemas import ResponsesRequest


def _usage(result: ChatResult) -> dict[str, Any]:
    """OpenAI's usage; the token details only when the provider reported some."""
    c = result.completion
    usage: dict[str, Any] = {
        "prompt_tokens": c.prompt_tokens,
        "completion_tokens": c.completion_tokens,
        "total_tokens": c.total_tokens,
    }
    if c.cached_tokens:
        usage["prompt_tokens_details"] = {"cached_tokens": c.cached_tokens}
    if c.reasoning_tokens:
        usage["completion_tokens_details"] = {"reasoning_tokens": c.reasoning_tokens}
    return usage


def _priced_usage(result: ChatResult) -> dict[str, Any]:
    """A stream's last usage: what it cost travels here (its headers left long before),
    ``cost_usd`` as the exact decimal string of the ``x-tollgate-cost-usd`` header."""
    return {**_usage(result), "cost_usd": usd(result.cost_micros)}


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


def _sse(data: dict[str, Any], event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n"


def _error_event(exc: BaseException) -> dict[str, Any]:
    error = exc if isinstance(exc, ApiError) else InternalError()
    return error.body()


def chat_completion_sse(stream: ChatStream, *, include_usage: bool) -> Iterator[str]:
    """The completion as server-sent events, one per piece the model produced, as OpenAI
    streams it: a role chunk, content chunks, a finish chunk, the usage chunk when asked
    (``stream_options.include_usage``), ``[DONE]``. The usage is what was billed, written
    before the finish chunk leaves. A provider failing mid-stream ends the stream with an
    ``{"error": ...}`` event and no ``[DONE]`` (OpenAI's SDK raises it as an APIError)."""
    meta = stream.meta
    base = {
        "id": meta.id,
        "object": "chat.completion.chunk",
        "created": meta.created,
        "model": meta.model,
        "system_fingerprint": None,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        body: dict[str, Any] = {
            **base,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            body["usage"] = None
        return _sse(body)

    texts = stream.texts()
    try:
        yield chunk({"role": "assistant", "content": "", "refusal": None})
        try:
            for text in texts:
                yield chunk({"content": text})
        except Exception as exc:  # billed already (ChatStream); the client learns why
            yield _sse(_error_event(exc))
            return
        yield chunk({}, stream.finish_reason)
        if include_usage:
            yield _sse({**base, "choices": [], "usage": _priced_usage(stream.result)})
        yield "data: [DONE]\n\n"
    finally:
        texts.close()
        stream.close()


# -- the Responses API -----------------------------------------------------------------------
def _response_usage(result: ChatResult) -> dict[str, Any]:
    c = result.completion
    return {
        "input_tokens": c.prompt_tokens,
        "input_tokens_details": {"cached_tokens": c.cached_tokens},
        "output_tokens": c.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": c.reasoning_tokens},
        "total_tokens": c.total_tokens,
    }


def _message(result: ChatResult, text: str, status: str) -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {
        "type": "message",
        "id": f"msg_{result.id.removeprefix('resp_')}",
        "status": status,
        "role": "assistant",
        "content": content if status == "completed" else [],
    }


def response_object(
    result: ChatResult,
    request: ResponsesRequest,
    *,
    status: str = "completed",
    text: str | None = None,
    usage: bool = True,
) -> dict[str, Any]:
    """A Responses API ``response`` object (what ``client.responses.create`` returns)."""
    finished = status == "completed"
    incomplete = finished and result.completion.finish_reason == "length"
    return {
        "id": result.id,
        "object": "response",
        "created_at": result.created,
        "status": "incomplete" if incomplete else status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "model": result.model,
        "output": [_message(result, result.completion.text if text is None else text, status)]
        if finished
        else [],
        "parallel_tool_calls": True,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "tool_choice": "auto",
        "tools": [],
        "text": {"format": {"type": "text"}},
        "metadata": {},
        "usage": _response_usage(result) if usage and finished else None,
        "user": request.user,
    }


def response_sse(stream: ChatStream, request: ResponsesRequest) -> Iterator[str]:
    """The Responses API's streaming events, one ``response.output_text.delta`` per piece
    the model produced; ``response.completed`` carries the usage billed (with
    ``cost_usd``). A provider failing
    mid-stream ends with a ``response.failed`` event."""
    meta = stream.meta
    seq = 0

    def event(kind: str, **fields: Any) -> str:
        nonlocal seq
        seq += 1
        return _sse({"type": kind, "sequence_number": seq - 1, **fields}, kind)

    item_id = f"msg_{meta.id.removeprefix('resp_')}"
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    texts = stream.texts()
    try:
        started = response_object(meta, request, status="in_progress", usage=False)
        yield event("response.created", response=started)
        yield event("response.in_progress", response=started)
        item = _message(meta, "", "in_progress")
        yield event("response.output_item.added", output_index=0, item=item)
        yield event("response.content_part.added", item_id=item_id, output_index=0,
                    content_index=0, part=part)  # fmt: skip
        try:
            for text in texts:
                yield event("response.output_text.delta", item_id=item_id, output_index=0,
                            content_index=0, delta=text, logprobs=[])  # fmt: skip
        except Exception as exc:
            failed = response_object(meta, request, status="failed", usage=False)
            failed["error"] = {
                "code": "server_error",
                "message": _error_event(exc)["error"]["message"],
            }
            yield event("response.failed", response=failed)
            return
        result = stream.result
        done_part = {**part, "text": result.completion.text}
        yield event("response.output_text.done", item_id=item_id, output_index=0,
                    content_index=0, text=result.completion.text, logprobs=[])  # fmt: skip
        yield event("response.content_part.done", item_id=item_id, output_index=0,
                    content_index=0, part=done_part)  # fmt: skip
        yield event("response.output_item.done", output_index=0,
                    item=_message(result, result.completion.text, "completed"))  # fmt: skip
        final = response_object(result, request)
        if final.get("usage"):
            final["usage"]["cost_usd"] = usd(result.cost_micros)
        kind = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
        yield event(kind, response=final)
    finally:
        texts.close()
        stream.close()


# -- embeddings ------------------------------------------------------------------------------
def embedding_list(
    model: str, vectors: list[list[float]], prompt_tokens: int, encoding: str
) -> dict[str, Any]:
    def encode(vector: list[float]) -> list[float] | str:
        if encoding == "base64":
            return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
        return vector

    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode(v)}
            for i, v in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def _owner(model_id: str) -> str:
    if model_id.startswith("upstream:"):
        return "upstream"
    return "tollgate" if model_id == "tollgate-echo" else "bedrock"


def model_object(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": _owner(model_id)}


def model_list(models: tuple[str, ...]) -> dict[str, Any]:
    return {"object": "list", "data": [model_object(m) for m in models]}
