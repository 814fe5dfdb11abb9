"""An OpenAI-compatible HTTP upstream (``upstream:<model>``).

Its ``base_url`` and ``api_key`` live in a Secrets Manager secret (JSON
``{"base_url": "https://host/v1", "api_key": "..."}``) named by
``TOLLGATE_UPSTREAM_SECRET_ARN``; the secret is read on first use and cached in the
container for ``secret_ttl_s`` (a 401/403 from the upstream drops it, so a rotated key is
picked up at once). Requests always carry ``max_tokens``: the upstream cannot produce more
than the budget reserved. Only the standard library speaks HTTP here (small cold start).

Streamed calls send ``stream: true`` with ``stream_options.include_usage`` forced on, so
the upstream's last chunk carries its own usage (what it bills); a stream that times out,
is cut before ``[DONE]`` or holds a chunk Tollgate cannot read raises
:class:`ProviderTimeout` / :class:`ProviderError` while being iterated, and the caller bills
the reservation's upper bound.

Embeddings (``POST /v1/embeddings``) go to ``{base_url}/embeddings`` with the same key:
``model``, ``input`` (always a list), ``dimensions`` when asked and ``encoding_format``;
the answer's ``data[].embedding`` (floats, or base64 of little-endian float32) in
``index`` order and ``usage.prompt_tokens``. Without usage, the reservation's upper bound
is billed, marked estimated.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import json
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from functions.api import tokens
from functions.api.errors import (
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

USER_AGENT = "tollgate/0.1"
_FINISH = {"stop": "stop", "length": "length", "content_filter": "content_filter"}


class UpstreamSecret(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    base_url: str = Field(pattern=r"^https?://[^\s]+$")
    api_key: str = Field(min_length=1)


def secretsmanager_reader(secret_arn: str) -> Callable[[], str]:
    """A function that reads the secret's string from Secrets Manager (client built lazily)."""
    client: list[Any] = []

    def read() -> str:
        if not client:
            import botocore.session

            client.append(botocore.session.get_session().create_client("secretsmanager"))
        return str(client[0].get_secret_value(SecretId=secret_arn)["SecretString"])

    return read


class SecretCache:
    """The upstream secret, read at most once per ``ttl_s`` per container."""

    def __init__(self, read: Callable[[], str] | None, ttl_s: float) -> None:
        self._read = read
        self._ttl = ttl_s
        self._value: UpstreamSecret | None = None
        self._at = 0.0
        self._lock = threading.Lock()

    def get(self) -> UpstreamSecret:
        if self._read is None:
            raise ModelUnavailable("The upstream model provider is not configured.")
        with self._lock:
            if self._value is None or time.monotonic() - self._at > self._ttl:
                self._value = self._fetch()
                self._at = time.monotonic()
            return self._value

    def forget(self) -> None:
        with self._lock:
            self._value = None

    def _fetch(self) -> UpstreamSecret:
        from botocore.exceptions import BotoCoreError, ClientError

        assert self._read is not None
        try:
            raw = self._read()
        except (ClientError, BotoCoreError) as exc:
            raise ModelUnavailable(
                f"The upstream's secret could not be read ({type(exc).__name__})."
            ) from None
        try:
            return UpstreamSecret.model_validate_json(raw)
        except ValidationError:
            # E.g. the value CDK generated before an operator stored {"base_url", "api_key"}.
            raise ModelUnavailable(
                "The upstream model provider is not configured (its secret holds no "
                "base_url and api_key)."
            ) from None


def request_body(call: ModelCall, *, stream: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": call.model,
        "messages": [{"role": m.role, "content": m.text} for m in call.messages],
        "max_tokens": call.max_tokens,
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}  # forced: we bill on it
    if call.temperature is not None:
        body["temperature"] = call.temperature
    if call.top_p is not None:
        body["top_p"] = call.top_p
    if call.stop:
        body["stop"] = list(call.stop)
    return body


def parse_response(data: Any, call: ModelCall) -> Completion:
    try:
        choice = data["choices"][0]
        text = choice["message"].get("content") or ""
        if not isinstance(text, str):
            raise TypeError
        finish = _FINISH.get(str(choice.get("finish_reason")), "stop")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise ProviderError("The upstream sent an answer Tollgate cannot read.") from None
    usage: Any = data.get("usage") if isinstance(data, dict) else None
    try:
        prompt = int(usage["prompt_tokens"])
        completion = int(usage["completion_tokens"])
    except (KeyError, TypeError, ValueError):
        # No usage reported: charge the upper bounds (never less than the model could use).
        prompt = tokens.prompt_upper_bound(m.text for m in call.messages)
        completion = min(call.max_tokens, len(text.encode("utf-8")))
    prompt, completion = max(prompt, 0), max(completion, 0)
    cached, reasoning = usage_details(usage, prompt, completion)
    return Completion(text, prompt, completion, finish, cached, reasoning)


def usage_details(usage: Any, prompt: int, completion: int) -> tuple[int, int]:
    """OpenAI's ``prompt_tokens_details.cached_tokens`` and
    ``completion_tokens_details.reasoning_tokens`` (0 when absent or unreadable)."""
    if not isinstance(usage, dict):
        return 0, 0
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    cached = prompt_details.get("cached_tokens") if isinstance(prompt_details, dict) else None
    reasoning = (
        completion_details.get("reasoning_tokens") if isinstance(completion_details, dict) else None
    )
    return details(prompt, completion, cached, reasoning)


def parse_chunk(data: Any) -> Delta:
    """One ``chat.completion.chunk`` as a :class:`Delta` (ProviderError if unreadable)."""
    try:
        choices = data["choices"]
        text, finish = "", None
        if choices:
            choice = choices[0]
            text = (choice.get("delta") or {}).get("content") or ""
            if not isinstance(text, str):
                raise TypeError
            if choice.get("finish_reason"):
                finish = _FINISH.get(str(choice["finish_reason"]), "stop")
        usage = data.get("usage")
        prompt = completion = None
        cached = reasoning = 0
        if usage:
            prompt = max(int(usage["prompt_tokens"]), 0)
            completion = max(int(usage["completion_tokens"]), 0)
            cached, reasoning = usage_details(usage, prompt, completion)
    except (KeyError, IndexError, TypeError, AttributeError, ValueError):
        raise ProviderError("The upstream sent a chunk Tollgate cannot read.") from None
    return Delta(text, finish, prompt, completion, cached, reasoning)


def sse_events(resp: Any) -> Iterator[Delta]:
    """The deltas of an upstream's server-sent events, as they arrive, up to ``[DONE]``."""
    try:
        while True:
            line = resp.readline()
            if not line:
                break  # the connection closed before [DONE]: cut
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                return
            try:
                data = json.loads(payload)
            except ValueError:
                raise ProviderError("The upstream sent a chunk Tollgate cannot read.") from None
            yield parse_chunk(data)
    except TimeoutError:
        raise ProviderTimeout() from None
    except (OSError, http.client.HTTPException):
        pass  # cut (reset, incomplete chunk): reported below
    finally:
        resp.close()
    raise ProviderError("The upstream's stream ended before it was complete.")


def embeddings_body(call: EmbeddingCall) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": call.model,
        "input": list(call.inputs),
        "encoding_format": call.encoding_format,
    }
    if call.dimensions is not None:
        body["dimensions"] = call.dimensions
    return body


def _vector(value: Any) -> tuple[float, ...]:
    if isinstance(value, str):  # base64 of little-endian float32
        raw = base64.b64decode(value, validate=True)
        if not raw or len(raw) % 4:
            raise ValueError
        return struct.unpack(f"<{len(raw) // 4}f", raw)
    if not isinstance(value, list) or not value:
        raise TypeError
    return tuple(float(v) for v in value)


def parse_embeddings(data: Any, call: EmbeddingCall, upper_bound: int) -> Embeddings:
    """The upstream's ``list`` of embeddings, one per input in order (ProviderError if
    unreadable or not one per input); without usage, ``upper_bound`` marked estimated."""
    try:
        items = sorted(data["data"], key=lambda d: int(d["index"]))
        vectors = tuple(_vector(d["embedding"]) for d in items)
        if [int(d["index"]) for d in items] != list(range(len(call.inputs))):
            raise ValueError
    except (KeyError, TypeError, ValueError, AttributeError, binascii.Error, struct.error):
        raise ProviderError("The upstream sent embeddings Tollgate cannot read.") from None
    try:
        prompt = max(int(data["usage"]["prompt_tokens"]), 0)
    except (KeyError, TypeError, ValueError):
        return Embeddings(vectors, upper_bound, estimated=True)
    return Embeddings(vectors, prompt)


class UpstreamProvider:
    kind = "upstream"

    def __init__(self, secret: SecretCache) -> None:
        self._secret = secret

    def prompt_upper_bound(self, messages: tuple[ChatMessage, ...]) -> int:
        return tokens.prompt_upper_bound(m.text for m in messages)

    def complete(self, call: ModelCall) -> Completion:
        data = self._read_json(self._open(request_body(call), call.timeout_s, "application/json"))
        return parse_response(data, call)

    def embedding_upper_bound(self, inputs: tuple[str, ...]) -> int:
        return tokens.prompt_upper_bound(inputs)

    def check_embedding_model(self, model: str) -> None:
        """Any model: the upstream itself refuses one it cannot embed with (400)."""

    def embed(self, call: EmbeddingCall) -> Embeddings:
        resp = self._open(
            embeddings_body(call), call.timeout_s, "application/json", path="/embeddings"
        )
        return parse_embeddings(
            self._read_json(resp), call, self.embedding_upper_bound(call.inputs)
        )

    @staticmethod
    def _read_json(resp: Any) -> Any:
        try:
            with resp:
                return json.loads(resp.read())
        except TimeoutError:
            raise ProviderTimeout() from None
        except (ValueError, OSError, http.client.HTTPException):
            raise ProviderError("The upstream sent an answer Tollgate cannot read.") from None

    def stream(self, call: ModelCall) -> Iterator[Delta]:
        resp = self._open(request_body(call, stream=True), call.timeout_s, "text/event-stream")
        return sse_events(resp)

    def _open(
        self, body: dict[str, Any], timeout_s: float, accept: str, path: str = "/chat/completions"
    ) -> Any:
        """Send the request; the open response, or the typed error of a refusal."""
        secret = self._secret.get()
        url = secret.base_url.rstrip("/") + path
        req = urllib.request.Request(  # noqa: S310 - an http(s) URL the operator configured
            url,
            data=json.dumps(body).encode("utf-8"),
            headers={
                "Authorization": f"Bearer {secret.api_key}",
                "Content-Type": "application/json",
                "Accept": accept,
                "User-Agent": USER_AGENT,
            },
            method="POST",
        )
        try:
            return urllib.request.urlopen(req, timeout=timeout_s)  # noqa: S310
        except urllib.error.HTTPError as exc:
            status = exc.code
            exc.close()
            if status in (401, 403):
                self._secret.forget()
                raise ProviderUnreachable(
                    f"The upstream refused Tollgate's credentials ({status})."
                ) from None
            if status in (400, 413, 422):
                raise ProviderRejected(f"The upstream rejected the request ({status}).") from None
            if status == 429 or status >= 500:
                raise ModelUnavailable(f"The upstream is unavailable ({status}).") from None
            raise ProviderUnreachable(f"The upstream refused the call ({status}).") from None
        except TimeoutError:
            raise ProviderTimeout() from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise ProviderTimeout() from None
            raise ProviderUnreachable("The upstream could not be reached.") from None
        except (ValueError, OSError, http.client.HTTPException):
            raise ProviderError("The upstream sent an answer Tollgate cannot read.") from None
