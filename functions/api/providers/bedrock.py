"""Amazon Bedrock through the Converse API (``bedrock-runtime``: ``converse``).

Messages map to Converse's shape: ``system``/``developer`` messages become ``system``
blocks; ``user``, ``tool`` and ``function`` messages are user turns and ``assistant``
messages assistant turns; consecutive turns of one role are merged and empty ones dropped
(Converse rejects both). ``max_tokens`` becomes ``inferenceConfig.maxTokens``, so the model
can never produce more than the budget reserved. The client is built on first use; tests
hand in one wrapped in botocore's ``Stubber`` (moto does not emulate Bedrock's runtime).

Streamed calls use ``ConverseStream`` (authorised by ``bedrock:InvokeModelWithResponseStream``):
``contentBlockDelta`` events carry the text, ``messageStop`` the stop reason and the final
``metadata`` event Bedrock's own usage. An error event in the stream, a read timeout or a
stream that ends without ``metadata`` raises while iterating; the caller then bills the
reservation's upper bound.

Embeddings use ``InvokeModel`` on an Amazon Titan text embeddings model
(``amazon.titan-embed-text-v2:0``, ``amazon.titan-embed-text-v1``; any other model is a 400
``model_not_supported``), one call per input: body ``{"inputText", "dimensions",
"normalize": true}`` (v1 takes ``inputText`` only), answer ``embedding`` and
``inputTextTokenCount`` (summed over the inputs). A failure after some inputs were embedded
is a :class:`ProviderError`, and no further call starts once ``timeout_s`` has passed
(:class:`ProviderTimeout`): those calls ran, so the caller bills the upper bound.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

from functions.api import tokens
from functions.api.errors import (
    ApiError,
    ModelNotSupported,
    ModelUnavailable,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnreachable,
)
from functions.api.providers.base import (
    ChatMessage,
    Completion,
    Delta,
    EmbeddingCall,
    Embeddings,
    ModelCall,
    details,
)

SYSTEM_ROLES: Final = frozenset({"system", "developer"})
_FINISH: Final = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
}
_UNAVAILABLE: Final = frozenset(
    {"ThrottlingException", "ServiceUnavailableException", "ModelNotReadyException",
     "InternalServerException", "ServiceQuotaExceededException"}
)  # fmt: skip


TITAN_EMBED: Final = re.compile(r"^(?:[a-z]{2,4}\.)?amazon\.titan-embed-text-v(\d+)\b")


def titan_request(model: str, text: str, dimensions: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"inputText": text}
    version = TITAN_EMBED.match(model)
    if version is not None and version.group(1) != "1":  # v1 takes inputText only
        if dimensions is not None:
            body["dimensions"] = dimensions
        body["normalize"] = True
    return {
        "modelId": model,
        "body": json.dumps(body).encode("utf-8"),
        "contentType": "application/json",
        "accept": "application/json",
    }


def parse_titan(response: dict[str, Any]) -> tuple[tuple[float, ...], int]:
    try:
        data = json.loads(response["body"].read())
        vector = tuple(float(v) for v in data["embedding"])
        count = max(int(data["inputTextTokenCount"]), 0)
        if not vector:
            raise ValueError
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ProviderError("Bedrock sent embeddings Tollgate cannot read.") from None
    return vector, count


def default_client(region: str | None, timeout_s: float) -> Any:
    import botocore.config
    import botocore.session

    return botocore.session.get_session().create_client(
        "bedrock-runtime",
        region_name=region,
        config=botocore.config.Config(
            connect_timeout=3,
            read_timeout=timeout_s,
            # One attempt: a retry after a read timeout would outlive the function's deadline;
            # throttling is answered 503 with Retry-After and the client retries.
            retries={"max_attempts": 1, "mode": "standard"},
        ),
    )


def converse_request(call: ModelCall) -> dict[str, Any]:
    system = [{"text": m.text} for m in call.messages if m.role in SYSTEM_ROLES and m.text]
    turns: list[dict[str, Any]] = []
    for m in call.messages:
        if m.role in SYSTEM_ROLES or not m.text:
            continue
        role = "assistant" if m.role == "assistant" else "user"
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"][0]["text"] += "\n\n" + m.text
        else:
            turns.append({"role": role, "content": [{"text": m.text}]})
    if not turns:
        raise ProviderRejected("The conversation needs at least one non-empty user message.")
    inference: dict[str, Any] = {"maxTokens": call.max_tokens}
    if call.temperature is not None:
        inference["temperature"] = call.temperature
    if call.top_p is not None:
        inference["topP"] = call.top_p
    if call.stop:
        inference["stopSequences"] = list(call.stop)
    request: dict[str, Any] = {
        "modelId": call.model,
        "messages": turns,
        "inferenceConfig": inference,
    }
    if system:
        request["system"] = system
    return request


def converse_usage(usage: Any) -> tuple[int, int, int]:
    """Converse's usage as (prompt, completion, cached) in OpenAI's shape.

    Bedrock reports the prompt in three parts: ``inputTokens`` (read fresh),
    ``cacheReadInputTokens`` (served from the prompt cache) and ``cacheWriteInputTokens``
    (written to it). Tollgate's prompt is their sum and its cached part the cache reads; cache
    writes are priced as fresh prompt tokens (docs/billing.md, "Prices")."""
    fresh, completion = max(int(usage["inputTokens"]), 0), max(int(usage["outputTokens"]), 0)
    unbounded = 2**63
    reads, writes = details(unbounded, unbounded, usage.get("cacheReadInputTokens"),
                            usage.get("cacheWriteInputTokens"))  # fmt: skip
    return fresh + reads + writes, completion, reads


def parse_converse(response: dict[str, Any]) -> Completion:
    try:
        blocks = response["output"]["message"]["content"]
        text = "".join(b["text"] for b in blocks if isinstance(b, dict) and "text" in b)
        prompt, completion, cached = converse_usage(response["usage"])
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ProviderError("The model provider sent an answer Tollgate cannot read.") from None
    finish = _FINISH.get(str(response.get("stopReason", "")), "stop")
    return Completion(text, prompt, completion, finish, cached)


def parse_stream(events: Iterable[Any]) -> Iterator[Delta]:
    """ConverseStream's events (dicts, as botocore's EventStream yields them) as deltas."""
    finished = False
    try:
        for event in events:
            if not isinstance(event, dict):
                raise TypeError
            if "contentBlockDelta" in event:
                text = event["contentBlockDelta"]["delta"].get("text") or ""
                if text:
                    yield Delta(text=str(text))
            elif "messageStop" in event:
                reason = str(event["messageStop"].get("stopReason", ""))
                yield Delta(finish_reason=_FINISH.get(reason, "stop"))
            elif "metadata" in event:
                prompt, completion, cached = converse_usage(event["metadata"]["usage"])
                finished = True
                yield Delta(prompt_tokens=prompt, completion_tokens=completion,
                            cached_tokens=cached)  # fmt: skip
            else:
                for name in event:  # an exception event delivered as data
                    if name.endswith("Exception"):
                        raise _stream_error(name[0].upper() + name[1:])
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ProviderError("Bedrock sent a stream event Tollgate cannot read.") from None
    if not finished:
        raise ProviderError("Bedrock's stream ended before its usage was reported.")


def _stream_error(code: str) -> ApiError:
    if code == "ModelTimeoutException":
        return ProviderTimeout()
    return ProviderError(f"Bedrock's stream failed ({code}).")


def _events(response: dict[str, Any]) -> Iterator[Any]:
    """The raw events of a ConverseStream response, with transport errors typed."""
    from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError

    stream = response["stream"]
    try:
        yield from stream
    except ReadTimeoutError:
        raise ProviderTimeout() from None
    except ClientError as exc:  # botocore's EventStreamError: an error event mid-stream
        raise _stream_error(str(exc.response.get("Error", {}).get("Code", ""))) from None
    except BotoCoreError as exc:
        raise ProviderError(f"Bedrock's stream was cut ({type(exc).__name__}).") from None
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()


class BedrockProvider:
    kind = "bedrock"

    def __init__(self, client_factory: Callable[[], Any]) -> None:
        self._factory = client_factory
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._factory()
        return self._client

    def prompt_upper_bound(self, messages: tuple[ChatMessage, ...]) -> int:
        return tokens.prompt_upper_bound(m.text for m in messages)

    def complete(self, call: ModelCall) -> Completion:
        return parse_converse(self._send("converse", converse_request(call)))

    def stream(self, call: ModelCall) -> Iterator[Delta]:
        return parse_stream(_events(self._send("converse_stream", converse_request(call))))

    def embedding_upper_bound(self, inputs: tuple[str, ...]) -> int:
        return tokens.prompt_upper_bound(inputs)

    def check_embedding_model(self, model: str) -> None:
        if not TITAN_EMBED.match(model):
            raise ModelNotSupported(
                f"The Bedrock model '{model}' cannot make embeddings here "
                "(Amazon Titan text embeddings models can).",
                param="model",
            )

    def embed(self, call: EmbeddingCall) -> Embeddings:
        vectors: list[tuple[float, ...]] = []
        prompt = 0
        deadline = time.monotonic() + call.timeout_s
        for text in call.inputs:
            if vectors and time.monotonic() > deadline:  # no new call past the time limit
                raise ProviderTimeout()
            request = titan_request(call.model, text, call.dimensions)
            try:
                vector, count = parse_titan(self._send("invoke_model", request))
            except ApiError as exc:
                if not vectors:
                    raise
                raise ProviderError(
                    f"Bedrock failed after {len(vectors)} of {len(call.inputs)} inputs "
                    f"({exc.error_code})."
                ) from None
            vectors.append(vector)
            prompt += count
        return Embeddings(tuple(vectors), prompt)

    def _send(self, operation: str, request: dict[str, Any]) -> Any:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )

        try:
            return getattr(self.client, operation)(**request)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ValidationException":
                raise ProviderRejected(
                    "Bedrock rejected the request: "
                    + str(exc.response.get("Error", {}).get("Message", ""))[:300]
                ) from None
            if code == "ModelTimeoutException":
                raise ProviderTimeout() from None
            if code in _UNAVAILABLE:
                raise ModelUnavailable() from None
            if code in ("AccessDeniedException", "ResourceNotFoundException"):
                raise ProviderUnreachable(f"Bedrock refused the call ({code}).") from None
            raise ProviderError(f"Bedrock failed ({code or 'unknown error'}).") from None
        except ReadTimeoutError:
            raise ProviderTimeout() from None
        except (ConnectTimeoutError, EndpointConnectionError):
            raise ProviderUnreachable("Bedrock could not be reached.") from None
        except BotoCoreError as exc:
            raise ProviderError(f"Bedrock could not be reached ({type(exc).__name__}).") from None
