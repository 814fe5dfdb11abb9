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


# ------------------------------------------------------------------ the gate's Python rule


def _key_item(**over: object) -> dict[str, object]:
    from functions.gate import items as gate

    now = 1_790_000_000.0
    item: dict[str, object] = {"s": "active", "w": gate.minute_window(now), "c": 0, "n": 1, "g": 0}
    item.update(over)
    return item


@pytest.mark.parametrize(
    ("count", "own", "plan", "refused"),
    [(3, 5, 3, False), (5, 5, 3, True), (2, 2, 100, True), (1, 2, 100, False),
     (50, None, 100, False), (100, None, 100, True), (9, 10, None, False), (10, 10, None, True),
     (0, 0, 5, True)],
)  # fmt: skip
def test_the_keys_own_limit_wins_in_the_diagnosis(
    count: int, own: int | None, plan: int | None, refused: bool
) -> None:
    from functions.gate import admission as ad
    from functions.gate.decisions import Decision

    facts = ad.Facts("key_a", "acme", "live", "svc", frozenset(), None, None, 1)
    item = _key_item(c=count, **({} if own is None else {"kr": own}))
    found = ad.diagnose_key(item, facts, 1_790_000_000.0, plan)
    assert isinstance(found, Decision) is refused, found
    if refused:
        assert isinstance(found, Decision) and found.code == "rate_limit_exceeded"


def test_facts_carry_tags_from_the_secret_item() -> None:
    from functions.gate import admission as ad

    base = {"key_id": "k", "tenant_id": "t", "environment": "live", "principal": "p",
            "serial": 1}  # fmt: skip
    assert ad.Facts.from_item(base).tags == ""
    tagged = ad.Facts.from_item({**base, "tags": {"team": "a", "cc": "1"}})
    assert tagged.tags == "cc=1,team=a"


def test_the_context_carries_tags_as_a_string_and_back() -> None:
    from functions.gate.contract import GateContext, MalformedContext

    ctx = GateContext(tenant_id="t", key_id="k", tags="cc=1,team=a")
    wire = ctx.to_context()
    assert wire["tags"] == "cc=1,team=a" and all(isinstance(v, str) for v in wire.values())
    back = GateContext.from_context(wire)
    assert back.tag_map == {"cc": "1", "team": "a"}
    assert GateContext.from_context({"tenant_id": "t"}).tag_map == {}
    with pytest.raises(MalformedContext):
        _ = GateContext.from_context({"tags": "no-equals"}).tag_map


# ------------------------------------------------------------------ usage rollups


def test_tags_become_live_only_rollup_dimensions() -> None:
    from functions.usage import logic
    from tests.usage_support import usage_item

    live = usage_item(0, key="k1")
    live["tags"] = {"team": "a", "cc": "1"}
    fact = logic.UsageFact.from_item(live)
    assert fact.tags == ("cc=1", "team=a")
    sks = {k.sk for k in logic.rollup_keys(fact)}
    for g, p in (("hour", "2026-11-01T00"), ("day", "2026-11-01"), ("month", "2026-11")):
        assert {f"{g}#{p}#tag#cc=1", f"{g}#{p}#tag#team=a"} <= sks
    test = {**live, "environment": "test"}
    assert not any("#tag#" in k.sk for k in logic.rollup_keys(logic.UsageFact.from_item(test)))
    assert "tag" in logic.DIMENSIONS and "tag" in logic.BILLABLE_DIMENSIONS


@pytest.mark.parametrize("bad", [["team=a"], {"team": "a,b"}, {"": "x"}, "team=a"])
def test_malformed_event_tags_are_malformed_events(bad: object) -> None:
    from functions.usage import logic
    from tests.usage_support import usage_item

    item = usage_item(0)
    item["tags"] = bad
    with pytest.raises(logic.MalformedEvent):
        logic.UsageFact.from_item(item)


def test_statement_tag_breakdown() -> None:
    from functions.statements.logic import build
    from functions.usage.logic import Counters

    total = Counters(requests=3, cost_micros=30)
    lines = [("m|p|plan", Counters(requests=3, cost_micros=30))]
    tags = [("team=b", Counters(requests=1, cost_micros=10)),
            ("team=a", Counters(requests=2, cost_micros=20))]  # fmt: skip
    statement = build("t", "2026-11", lines, total, lambda _: None, "now", tags)
    data = statement.as_dict()
    assert [r["tag"] for r in data["by_tag"]] == ["team=a", "team=b"]
    assert data["by_tag"][0]["amount_micros"] == 20 and data["by_tag"][0]["tag_value"] == "a"
    assert "team=a" not in statement.to_csv()  # the CSV keeps the invoice lines only


def test_the_html_statement_shows_the_tag_breakdown_escaped() -> None:
    from functions.statements.html import render
    from functions.statements.logic import build
    from functions.usage.logic import Counters

    total = Counters(requests=3, prompt_tokens=30, cost_micros=1_234_567)
    lines = [("m|p|plan", total)]
    tags = [("team=a", Counters(requests=2, prompt_tokens=20, cost_micros=1_000_000)),
            ("repo=acme/w@main+1", Counters(requests=1, cost_micros=5))]  # fmt: skip
    doc = build("t", "2026-11", lines, total, lambda _: None, "now", tags).as_dict()
    page = render(doc)
    assert '<table id="tags">' in page and "By key tag" in page
    assert page.count('<tr class="tag">') == 2
    assert "repo=acme/w@main+1" in page and "1.000000" in page
    assert "overlap" in page
    untagged = build("t", "2026-11", lines, total, lambda _: None, "now").as_dict()
    assert '<table id="tags">' not in render(untagged)
