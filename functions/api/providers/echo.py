"""``tollgate-echo``: the built-in, deterministic model (README, "The managed API").

It answers with the text of the last user message (cut at the first stop sequence, then
truncated so that ``completion_tokens <= max_tokens``). Tokens are counted by
:func:`functions.api.tokens.count` (one per started 4 UTF-8 bytes); ``prompt_tokens`` is the
sum over all messages, so the reservation of an echo request is exact.

Streamed, it produces one chunk per whitespace-separated word of that answer (each word
with the whitespace after it), waiting ``chunk_delay_s`` before each chunk
(``TOLLGATE_ECHO_CHUNK_DELAY_MS``, default 0: functions/api/config.py), then reports its
usage like a real provider does at the end of a stream.

Its embeddings are a deterministic unit-length vector per input: SHAKE-256 of the input's
UTF-8 bytes read as ``dimensions`` unsigned 32-bit integers (default 16), centred and
scaled to length 1; their tokens are :func:`functions.api.tokens.count` of each input.
"""

from __future__ import annotations

import hashlib
import math
import re
import struct
import time
from collections.abc import Iterator
from typing import Final

from functions.api import tokens
from functions.api.providers.base import (
    ChatMessage,
    Completion,
    Delta,
    EmbeddingCall,
    Embeddings,
    ModelCall,
)

ECHO_MODEL = "tollgate-echo"
DEFAULT_DIMENSIONS: Final = 16
_WORD: Final = re.compile(r"\s*\S+\s*")


class EchoProvider:
    kind = "echo"

    def __init__(self, chunk_delay_s: float = 0.0) -> None:
        self.chunk_delay_s = chunk_delay_s

    def prompt_upper_bound(self, messages: tuple[ChatMessage, ...]) -> int:
        return prompt_tokens(messages)

    def complete(self, call: ModelCall) -> Completion:
        text = next((m.text for m in reversed(call.messages) if m.role == "user"), "")
        finish = "stop"
        for stop in call.stop:
            at = text.find(stop)
            if at >= 0:
                text = text[:at]
        text, cut = tokens.truncate(text, call.max_tokens)
        if cut:
            finish = "length"
        return Completion(
            text=text,
            prompt_tokens=prompt_tokens(call.messages),
            completion_tokens=tokens.count(text),
            finish_reason=finish,
        )

    def stream(self, call: ModelCall) -> Iterator[Delta]:
        return self._words(self.complete(call))

    def embedding_upper_bound(self, inputs: tuple[str, ...]) -> int:
        return sum(tokens.count(text) for text in inputs)

    def check_embedding_model(self, model: str) -> None:
        """tollgate-echo makes embeddings."""

    def embed(self, call: EmbeddingCall) -> Embeddings:
        dimensions = call.dimensions or DEFAULT_DIMENSIONS
        return Embeddings(
            tuple(tuple(echo_vector(text, dimensions)) for text in call.inputs),
            self.embedding_upper_bound(call.inputs),
        )

    def _words(self, completion: Completion) -> Iterator[Delta]:
        for word in words(completion.text):
            if self.chunk_delay_s > 0:
                time.sleep(self.chunk_delay_s)
            yield Delta(text=word)
        yield Delta(
            finish_reason=completion.finish_reason,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
        )


def words(text: str) -> list[str]:
    """``text`` as its whitespace-separated words; joined, they give ``text`` back."""
    pieces = _WORD.findall(text)
    return pieces if "".join(pieces) == text else [text]


def prompt_tokens(messages: tuple[ChatMessage, ...]) -> int:
    return sum(tokens.count(m.text) for m in messages)


def echo_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic vector of length 1 for ``text``."""
    raw = hashlib.shake_256(text.encode("utf-8")).digest(4 * dimensions)
    values = [v / 2**31 - 1.0 for v in struct.unpack(f"<{dimensions}I", raw)]
    norm = math.sqrt(sum(v * v for v in values))
    if norm == 0.0:
        return [1.0] + [0.0] * (dimensions - 1)
    return [v / norm for v in values]
