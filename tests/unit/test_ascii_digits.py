"""Every parser of a whole number from text refuses non-ASCII digits with its clear error.

``str.isdigit()`` is True for "²" and "٣"; ``int("²")`` raises and ``int("٣")`` is 3. 0.1.0
answered ``?limit=²`` with a 500 (fixed then, tests/fuzz/test_fuzz_api_bodies.py); these are
the other places that checked ``isdigit()`` alone.
"""

from __future__ import annotations

import pytest

from functions.keys import rules
from functions.keys.errors import InvalidInput
from functions.usage import aggregator
from tollgate.cli.context import BadInput, local_endpoint
from tollgate.local import __main__ as local_main

# superscript two, Arabic-Indic three, mixed, full-width twelve
NOT_ASCII = ["\u00b2", "\u0663", "1\u00b2", "\uff11\uff12"]


@pytest.mark.parametrize("text", NOT_ASCII)
def test_per_key_rate_override(text: str) -> None:
    with pytest.raises(InvalidInput, match="bad requests per minute"):
        rules.requests_per_minute(text)


def test_per_key_rate_override_still_takes_ascii() -> None:
    assert rules.requests_per_minute(" 12 ") == 12


@pytest.mark.parametrize("text", NOT_ASCII)
def test_stream_sequence_numbers(text: str) -> None:
    with pytest.raises(aggregator.MalformedEvent):
        aggregator.seq_key(text)
    assert aggregator.mark_at(f"0001@{text}") == 0  # an unreadable mark time: "long ago"


@pytest.mark.parametrize("text", NOT_ASCII)
def test_local_ports(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLGATE_AWS_PORT", text)
    with pytest.raises(BadInput, match="TOLLGATE_AWS_PORT must be a port number"):
        local_endpoint()
    monkeypatch.setenv("TOLLGATE_PORT", text)
    with pytest.raises(SystemExit) as exit_:
        local_main._port("TOLLGATE_PORT", 8080)
    assert exit_.value.code == 2


def test_local_ports_still_take_ascii(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLGATE_PORT", "8081")
    assert local_main._port("TOLLGATE_PORT", 8080) == 8081
