"""Input rules of the key lifecycle (pure functions, no I/O)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.common import keyformat
from functions.common.routes import SCOPES
from functions.keys import rules
from functions.keys.errors import InvalidInput, KeyServiceError, NotFound, quote, redact
from functions.keys.service import _sanitize
from functions.keys.tree import root_of as _root_of
from functions.keys.tree import with_descendants as _with_descendants


@pytest.mark.parametrize(
    ("text", "micros"),
    [("0", 0), ("0.002", 2000), ("1", 1_000_000), ("0.000001", 1), ("15.5", 15_500_000),
     ("1E+1", 10_000_000), (" 0.10 ", 100_000)],
)  # fmt: skip
def test_prices_become_integer_micros(text: str, micros: int) -> None:
    assert rules.price_micros("price", text) == micros


@pytest.mark.parametrize(
    "text", ["-1", "-0.001", "NaN", "nan", "Infinity", "-inf", "0.0000001", "abc", "", "1e30"]
)
def test_bad_prices_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        rules.price_micros("price", text)


@given(st.integers(0, 10**12))
def test_price_round_trip(micros: int) -> None:
    assert rules.price_micros("p", rules.micros_to_usd(micros)) == micros
    assert Decimal(rules.micros_to_usd(micros)) * 1_000_000 == micros


def test_scopes_are_known_deduplicated_and_within_allowed() -> None:
    assert rules.scopes(["tools:execute", " tools:execute", "inference:invoke"]) == [
        "inference:invoke",
        "tools:execute",
    ]
    with pytest.raises(InvalidInput, match="unknown scope"):
        rules.scopes(["admin:all"])
    with pytest.raises(InvalidInput, match="not allowed"):
        rules.scopes(["tools:execute"], allowed=["inference:invoke"])
    with pytest.raises(InvalidInput):
        rules.scopes([])
    assert set(rules.scopes(sorted(SCOPES))) == SCOPES


@pytest.mark.parametrize("value", ["", "a" * 65, "has space", "dot.ted", "ü", "a/b"])
def test_bad_tenant_ids(value: str) -> None:
    with pytest.raises(InvalidInput):
        rules.tenant_id(value)


@pytest.mark.parametrize("value", ["svc", "agent:planner/v2", "a@b.example", "x" * 128])
def test_good_principals(value: str) -> None:
    assert rules.principal(value) == value


@pytest.mark.parametrize("value", ["", "x" * 129, "has space", "semi;colon"])
def test_bad_principals(value: str) -> None:
    with pytest.raises(InvalidInput):
        rules.principal(value)


def test_a_secret_given_as_key_id_is_refused_without_echo() -> None:
    secret = keyformat.generate("live")
    with pytest.raises(InvalidInput) as info:
        rules.key_id(secret)
    assert secret not in str(info.value)
    assert "--secret" in str(info.value)


def test_spike_and_limits() -> None:
    assert rules.spike_factor(2.5) == 2.5
    assert rules.spike_factor(3.0) == 3
    for bad in (1, 0.5, float("nan"), float("inf")):
        with pytest.raises(InvalidInput):
            rules.spike_factor(bad)
    with pytest.raises(InvalidInput):
        rules.spike_policy("panic")
    with pytest.raises(InvalidInput):
        rules.limit("x", -1)
    assert rules.limit("x", None) is None
    with pytest.raises(InvalidInput):
        rules.token_budget(0)


def test_reason_is_required_one_line_and_redacted() -> None:
    with pytest.raises(InvalidInput):
        rules.reason("   ")
    with pytest.raises(InvalidInput):
        rules.reason(None)
    secret = keyformat.generate("test")
    text = rules.reason(f"leaked\n{secret} on a paste site")
    assert secret not in text and "\n" not in text and "[redacted]" in text


def test_errors_redact_secrets_and_hashes() -> None:
    secret = keyformat.generate("live")
    digest = keyformat.hash_secret(secret)
    err = NotFound(f"nothing for {secret} or {digest}")
    assert secret not in str(err) and digest not in str(err)
    assert isinstance(err, KeyServiceError) and err.status == 404
    assert secret not in redact(f"x{secret}y")
    assert secret not in quote(secret)
    assert len(quote("x" * 500)) < 100


def test_sanitize_makes_details_storable_and_redacted() -> None:
    secret = keyformat.generate("live")
    out = _sanitize({"a": (1, 2), "b": {secret}, "c": {"d": secret}, "e": object()})
    assert out["a"] == [1, 2]
    assert secret not in repr(out)


def test_descendants_and_roots() -> None:
    parents = {"p": None, "c1": "p", "c2": "p", "x": None, "g": "c1"}
    assert _with_descendants(["p"], parents) == ["p", "c1", "g", "c2"]
    assert _with_descendants(["x", "c1"], parents) == ["x", "c1", "g"]
    assert _root_of("g", parents, {"p"}) == "p"
    assert _root_of("p", parents, {"p"}) == "p"
