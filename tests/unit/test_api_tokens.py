"""The built-in model's token count and the prompt upper bound (no I/O)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from functions.api import tokens
from functions.api.providers.base import ChatMessage, ModelCall
from functions.api.providers.echo import EchoProvider


def test_count_is_bytes_over_four_rounded_up() -> None:
    assert tokens.count("") == 0
    assert tokens.count("a") == 1
    assert tokens.count("abcd") == 1
    assert tokens.count("abcde") == 2
    assert tokens.count("é") == 1  # 2 bytes
    assert tokens.count("🙂🙂") == 2  # 4 bytes each


@given(st.text(min_size=1))
def test_non_empty_text_has_tokens(text: str) -> None:
    assert tokens.count(text) > 0


@given(st.text(), st.integers(min_value=0, max_value=50))
def test_truncate_keeps_a_prefix_within_the_limit(text: str, limit: int) -> None:
    cut, was_cut = tokens.truncate(text, limit)
    assert text.startswith(cut)
    assert tokens.count(cut) <= limit
    assert was_cut == (cut != text)
    if not was_cut:
        assert tokens.count(text) <= limit
    else:  # it stopped less than one character (at most 4 bytes) short of the limit
        assert len(cut.encode()) > limit * tokens.BYTES_PER_TOKEN - 4


@given(st.lists(st.text(), max_size=8))
def test_upper_bound_is_at_least_bytes_and_echo_count(texts: list[str]) -> None:
    bound = tokens.prompt_upper_bound(texts)
    assert bound >= sum(len(t.encode()) for t in texts)
    assert bound >= sum(tokens.count(t) for t in texts)


@given(
    st.lists(st.tuples(st.sampled_from(["system", "user", "assistant"]), st.text()), min_size=1),
    st.integers(min_value=1, max_value=64),
)
def test_echo_respects_max_tokens_and_is_deterministic(
    messages: list[tuple[str, str]], max_tokens: int
) -> None:
    call = ModelCall("tollgate-echo", tuple(ChatMessage(r, t) for r, t in messages), max_tokens)
    echo = EchoProvider()
    first, second = echo.complete(call), echo.complete(call)
    assert first == second
    assert first.completion_tokens <= max_tokens
    assert first.prompt_tokens == echo.prompt_upper_bound(call.messages)
    last_user = next((t for r, t in reversed(messages) if r == "user"), "")
    assert last_user.startswith(first.text)
    assert first.finish_reason == ("stop" if first.text == last_user else "length")
