"""Durations as operators type them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.keys.durations import MAX_SECONDS, UNITS, format_duration, parse_duration
from functions.keys.errors import InvalidInput


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("1h", 3600),
        ("30d", 30 * 86400),
        ("2w", 14 * 86400),
        ("1h30m", 5400),
        (" 1H ", 3600),
    ],
)
def test_parses(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "1", "h", "1x", "-1h", "1.5h", "1 h", "one hour", "1h-", "99999999999d", "5000w"]
)
def test_refuses(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_duration(text)
    assert info.value.code == "invalid_input"
    assert "\n" not in str(info.value)


def test_zero_only_where_allowed() -> None:
    with pytest.raises(InvalidInput):
        parse_duration("0")
    with pytest.raises(InvalidInput):
        parse_duration("0h")
    assert parse_duration("0", allow_zero=True) == 0
    assert parse_duration("0s", allow_zero=True) == 0


@given(st.integers(1, MAX_SECONDS))
def test_format_and_parse_round_trip(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.text(max_size=20))
def test_never_raises_anything_but_invalid_input(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except InvalidInput:
        return
    assert 0 < seconds <= MAX_SECONDS
    assert set(text.strip().lower()) <= set("0123456789" + "".join(UNITS))
