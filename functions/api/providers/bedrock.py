"""Amazon Bedrock through the Converse API (``bedrock-runtime``: ``converse``).

Messages map to Converse's shape: ``system``/``developer`` messages become ``system``
blocks; ``user``, ``tool`` and ``function`` messages are user turns and ``assistant``
messages assistant turns; consecutive turns of one role are merged and empty ones dropped
(Converse rejects both). ``max_tokens`` becomes ``inferenceConfig.maxTokens``, so the model
can never produce more than the budget reserved. The client is built on first use; tests
hand in one wrapped in botocore's ``Stubber`` (moto does not emulate Bedrock's runtime).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Final

from functions.api import tokens
from functions.api.errors import ModelUnavailable, ProviderError, ProviderRejected, ProviderTimeout
from functions.api.providers.base import ChatMessage, Completion, ModelCall

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


def parse_converse(response: dict[str, Any]) -> Completion:
    try:
        blocks = response["output"]["message"]["content"]
        text = "".join(b["text"] for b in blocks if isinstance(b, dict) and "text" in b)
        usage = response["usage"]
        prompt, completion = int(usage["inputTokens"]), int(usage["outputTokens"])
    except (KeyError, TypeError, ValueError):
        raise ProviderError("The model provider sent an answer Tollgate cannot read.") from None
    finish = _FINISH.get(str(response.get("stopReason", "")), "stop")
    return Completion(text, max(prompt, 0), max(completion, 0), finish)


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
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            ReadTimeoutError,
        )

        request = converse_request(call)
        try:
            response = self.client.converse(**request)
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
            raise ProviderError(f"Bedrock failed ({code or 'unknown error'}).") from None
        except (ReadTimeoutError, ConnectTimeoutError):
            raise ProviderTimeout() from None
        except BotoCoreError as exc:
            raise ProviderError(f"Bedrock could not be reached ({type(exc).__name__}).") from None
        return parse_converse(response)
