"""The one interface every model back end implements."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class ChatMessage:
    role: str  # system | developer | user | assistant | tool | function
    text: str


@dataclass(frozen=True)
class ModelCall:
    model: str  # the provider's own model id (routing prefix removed)
    messages: tuple[ChatMessage, ...]
    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    timeout_s: float = 25.0  # the whole call; also every single read from the provider


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # stop | length | content_filter
    # pricing (issue 14): the parts of the counts above the provider reports apart (OpenAI
    # prompt_tokens_details / completion_tokens_details, Bedrock cacheReadInputTokens);
    # always within them (cached <= prompt, reasoning <= completion: functions/pricing/money.py).
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Delta:
    """One event of a streamed completion, as the provider produced it.

    ``text`` is the next piece of the answer (may be empty); ``finish_reason`` comes once,
    near the end; ``prompt_tokens``/``completion_tokens`` are the provider's own counts,
    when it reports them (once, at the end). A stream that ends without them has no known
    usage: the caller bills the reservation's upper bound (functions/api/chat.py).
    """

    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0  # with the counts above: the parts reported apart (Completion)
    reasoning_tokens: int = 0


@dataclass(frozen=True)
class EmbeddingCall:
    model: str  # the provider's own model id (routing prefix removed)
    inputs: tuple[str, ...]
    dimensions: int | None = None  # None: the model's default
    encoding_format: str = "float"  # float | base64: how the provider may send the vectors
    timeout_s: float = 25.0


@dataclass(frozen=True)
class Embeddings:
    """One vector per input, in order, and the prompt tokens the provider reported
    (``estimated``: it reported none, so ``prompt_tokens`` is the upper bound reserved)."""

    vectors: tuple[tuple[float, ...], ...]
    prompt_tokens: int
    estimated: bool = False


@runtime_checkable
class EmbeddingProvider(Protocol):
    """A back end that makes embeddings. ``embed`` raises only ApiError subclasses; a model
    the provider cannot embed with is :class:`functions.api.errors.ModelNotSupported`
    (raised by ``check_embedding_model`` before anything is reserved)."""

    def embedding_upper_bound(self, inputs: tuple[str, ...]) -> int:
        """At least the prompt tokens the model will report for ``inputs``."""
        ...

    def check_embedding_model(self, model: str) -> None: ...

    def embed(self, call: EmbeddingCall) -> Embeddings: ...


def details(prompt: int, completion: int, cached: object, reasoning: object) -> tuple[int, int]:
    """A provider's cached and reasoning counts, clamped into ``0..prompt`` and
    ``0..completion`` (a missing or unreadable detail is 0: priced as its parent kind)."""

    def clamp(value: object, most: int) -> int:
        try:
            number = int(value)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            return 0
        return max(0, min(number, most))

    return clamp(cached, prompt), clamp(reasoning, completion)


class Provider(Protocol):
    """A model back end. ``complete`` and ``stream`` raise only
    :class:`functions.api.errors.ApiError` subclasses (ProviderError, ProviderRejected,
    ProviderTimeout, ModelUnavailable); so does iterating the stream."""

    kind: str

    def prompt_upper_bound(self, messages: tuple[ChatMessage, ...]) -> int:
        """At least the prompt tokens the model will report for ``messages``."""
        ...

    def complete(self, call: ModelCall) -> Completion: ...

    def stream(self, call: ModelCall) -> Iterator[Delta]:
        """Start the call now (a refusal raises here, before any byte is sent to the client)
        and return its events; iterating them may raise (a timeout, a cut stream)."""
        ...
