"""Token counting for the built-in model and the prompt upper bound used to reserve budget.

``tollgate-echo`` counts one token per started group of 4 UTF-8 bytes:
``count(text) == ceil(len(text.encode("utf-8")) / 4)``. It is deterministic, above zero for
any non-empty text, and close to what real tokenizers give for English (~4 characters per
token). :func:`truncate` cuts a text so that its count stays within ``max_tokens``.

Real models report their own counts after the call; before the call the budget reserves
:func:`prompt_upper_bound`: the prompt's UTF-8 byte count plus a per-message allowance for
the chat template. Byte-level tokenizers (GPT, Claude, Llama 3) and SentencePiece with byte
fallback never produce more tokens than bytes, so the reservation is a true upper bound and
settling can only give tokens back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

BYTES_PER_TOKEN: Final = 4
TEMPLATE_TOKENS_PER_MESSAGE: Final = 16
TEMPLATE_TOKENS: Final = 32


def count(text: str) -> int:
    n = len(text.encode("utf-8"))
    return (n + BYTES_PER_TOKEN - 1) // BYTES_PER_TOKEN


def truncate(text: str, max_tokens: int) -> tuple[str, bool]:
    """The longest prefix of ``text`` (on a character boundary) with at most ``max_tokens``
    tokens, and whether anything was cut."""
    data = text.encode("utf-8")
    limit = max(0, max_tokens) * BYTES_PER_TOKEN
    if len(data) <= limit:
        return text, False
    return data[:limit].decode("utf-8", errors="ignore"), True


def prompt_upper_bound(texts: Iterable[str]) -> int:
    """An upper bound of the prompt tokens any supported model counts for these messages."""
    total, messages = TEMPLATE_TOKENS, 0
    for text in texts:
        total += len(text.encode("utf-8"))
        messages += 1
    return total + messages * TEMPLATE_TOKENS_PER_MESSAGE
