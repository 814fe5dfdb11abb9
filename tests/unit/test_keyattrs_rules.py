"""Source networks (functions/gate/sources.py), tags (functions/common/tags.py) and the
per-key limit rule (functions/keys/rules.py): pure functions."""

from __future__ import annotations

import pytest

from functions.common import tags
from functions.gate import sources
from functions.keys import rules
from functions.keys.errors import InvalidInput

# ------------------------------------------------------------------ CIDRs


def test_normalise_sorts_dedups_and_splits() -> None:
    got = sources.normalise(["2001:DB8::/32", "10.0.0.0/8,192.0.2.1", " 10.0.0.0/8 "])
    assert got == ["10.0.0.0/8", "192.0.2.1/32", "2001:db8::/32"]


def test_mapped_ipv6_network_is_stored_as_ipv4() -> None:
    assert sources.normalise(["::ffff:192.0.2.0/120"]) == ["192.0.2.0/24"]
    assert sources.normalise(["::ffff:192.0.2.1"]) == ["192.0.2.1/32"]


@pytest.mark.parametrize(
    "bad", ["10.0.0.1/8", "10.0.0.0/33", "2001:db8::1/32", "x", "10.0.0.0/", "1.2.3", "/8"]
)
def test_strict_parse_refuses(bad: str) -> None:
    with pytest.raises(sources.BadCidr):
        sources.parse_cidr(bad)


def test_limits() -> None:
    sources.normalise([f"10.{i}.0.0/16" for i in range(16)])
    with pytest.raises(sources.BadCidr, match="at most 16"):
        sources.normalise([f"10.{i}.0.0/16" for i in range(17)])
    with pytest.raises(sources.BadCidr, match="at least one"):
        sources.normalise([" , "])


@pytest.mark.parametrize(
    ("cidrs", "source", "allowed"),
    [
        (["10.0.0.0/8"], "10.255.1.2", True),
        (["10.0.0.0/8"], "11.0.0.1", False),
        (["10.0.0.0/8"], "::ffff:10.1.2.3", True),  # IPv4-mapped IPv6 source
        (["10.0.0.0/8"], "::ffff:11.1.2.3", False),
        (["2001:db8::/32"], "2001:db8:ffff::1", True),
        (["2001:db8::/32"], "2001:db9::1", False),
        (["2001:db8::/32"], "10.0.0.1", False),  # families never match each other
        (["0.0.0.0/0"], "::1", False),
        (["::/0"], "2001:db8::1", True),
        (["192.0.2.7/32"], "192.0.2.7", True),
        (["192.0.2.7/32"], "192.0.2.8", False),
        (["10.0.0.0/8"], "", False),  # no source: refused when a list is set
        (["10.0.0.0/8"], None, False),
        (["10.0.0.0/8"], "10.0.0.1, 10.0.0.2", False),  # malformed
        (["10.0.0.0/8"], "not-an-ip", False),
        (["10.0.0.0/8"], 167772161, False),  # not a string
        (["10.0.0.0/8"], "10.0.0.1/32", False),
        ([], "203.0.113.9", True),  # no list: anywhere
        (None, None, True),
        (["garbage"], "10.0.0.1", False),  # a corrupt stored list refuses
    ],
)
def test_allows(cidrs: list[str] | None, source: object, allowed: bool) -> None:
    assert sources.allows(cidrs, source) is allowed


def test_within() -> None:
    parent = ["10.0.0.0/8", "2001:db8::/32"]
    assert sources.within(["10.1.0.0/16", "2001:db8:5::/48", "10.0.0.0/8"], parent) is None
    assert sources.within(["10.1.0.0/16", "11.0.0.0/8"], parent) == "11.0.0.0/8"
    assert sources.within(["0.0.0.0/0"], parent) == "0.0.0.0/0"
    assert sources.within(["2001:db8::/31"], parent) == "2001:db8::/31"


# ------------------------------------------------------------------ tags


def test_tags_parse_validate_encode_round_trip() -> None:
    got = tags.validate(["team=search", "cost-center=cc:42/x", "repo=acme/w@main+1"])
    assert list(got) == ["cost-center", "repo", "team"]
    text = tags.encode(got)
    assert text == "cost-center=cc:42/x,repo=acme/w@main+1,team=search"
    assert tags.decode(text) == got
    assert tags.decode("") == {} and tags.encode(None) == ""
    assert tags.dimension_values(got) == text.split(",")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (["team"], "expected KEY=VALUE"),
        (["=x"], "key before '=' is empty"),
        (["team="], "value after '=' is empty"),
        (["team=a=b"], "use only"),
        (["team=a,b"], "use only"),
        (["te,am=a"], "use only"),
        (["team=a b"], "use only"),
        (["team=a#b"], "use only"),
        (["team=caf\u00e9"], "use only"),
        (["k" * 33 + "=v"], "longer than 32"),
        (["k=" + "v" * 129], "longer than 128"),
        (["a=1", "a=2"], "given twice"),
        ([f"k{i}=v" for i in range(9)], "at most 8"),
    ],
)
def test_bad_tags(given: list[str], message: str) -> None:
    with pytest.raises(tags.BadTag, match=message):
        tags.validate(given)
    with pytest.raises(InvalidInput, match=message):
        rules.tags(given)


def test_tag_limits_are_inclusive() -> None:
    tags.validate([f"k{i}=v" for i in range(8)])
    tags.validate(["k" * 32 + "=" + "v" * 128])


# ------------------------------------------------------------------ per-key limit


@pytest.mark.parametrize(
    ("given", "expected"), [(0, 0), (5, 5), ("7", 7), ("none", None), ("NONE", None), (None, None)]
)
def test_requests_per_minute(given: int | str | None, expected: int | None) -> None:
    assert rules.requests_per_minute(given) == expected


@pytest.mark.parametrize("bad", [-1, "-1", "1.5", "ten", "", True, 10**9 + 1])
def test_requests_per_minute_refuses(bad: object) -> None:
    with pytest.raises(InvalidInput):
        rules.requests_per_minute(bad)  # type: ignore[arg-type]
