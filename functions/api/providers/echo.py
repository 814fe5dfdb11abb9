"""``tollgate-echo``: the built-in, deterministic model (README, "The managed API").

It answers with the text of the last user message (cut at the first stop sequence, then
truncated so that ``completion_tokens <= max_tokens``). Tokens are counted by
:func:`functions.api.tokens.count` (one per started 4 UTF-8 bytes); ``prompt_tokens`` is the
sum over all messages, so the reservation of an echo request is exact.
"""

from __future__ import annotations

from functions.api import tokens
from functions.api.providers.base import ChatMessage, Completion, ModelCall

ECHO_MODEL = "tollgate-echo"


class EchoProvider:
    kind = "echo"

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


def prompt_tokens(messages: tuple[ChatMessage, ...]) -> int:
    return sum(tokens.count(m.text) for m in messages)
