"""The one interface every model back end implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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
    timeout_s: float = 25.0


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # stop | length | content_filter

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Provider(Protocol):
    """A model back end. ``complete`` raises only :class:`functions.api.errors.ApiError`
    subclasses (ProviderError, ProviderRejected, ProviderTimeout, ModelUnavailable)."""

    kind: str

    def prompt_upper_bound(self, messages: tuple[ChatMessage, ...]) -> int:
        """At least the prompt tokens the model will report for ``messages``."""
        ...

    def complete(self, call: ModelCall) -> Completion: ...
