"""Key tags in usage (issue 15 item 3): events carrying ``tags`` through the real
aggregator into ``tag`` rollups (live only), ``tollgate usage --by tag:k`` / ``--tag k=v``,
reconciliation and the statement's per-tag breakdown; and end to end from a tagged key's
request through the authorizer and the managed API into its usage event."""

from __future__ import annotations

from typing import Any

import pytest

from functions.common.config import TableNames
from tests.integration.conftest import Run
from tests.usage_support import usage_item

TABLES = TableNames()


# acme and aggregate_events: tests/integration/conftest.py


TEAMS = ("search", "ads", None)  # None: an untagged key


def tagged(n: int, env: str = "live") -> dict[str, Any]:
    item = usage_item(n, key=f"k{n % 3}", env=env, plan="gold", cost=10 + n)
    team = TEAMS[n % 3]
    if team is not None:
        item["tags"] = {"team": team, "cc": "cc-1" if n % 2 else "cc-2"}
    return item


@pytest.fixture
def traffic(acme: str, aggregate_events: Any) -> list[dict[str, Any]]:
    items = [tagged(i) for i in range(30)] + [tagged(100 + i, env="test") for i in range(6)]
    return list(aggregate_events(items))


def live_with(items: list[dict[str, Any]], key: str, value: str) -> list[dict[str, Any]]:
    return [
        i for i in items
        if i["environment"] == "live" and (i.get("tags") or {}).get(key) == value
    ]  # fmt: skip


def test_usage_by_tag_key(cli: Run, traffic: list[dict[str, Any]]) -> None:
    rows = cli("usage", "--tenant", "acme", "--by", "tag:team").ok().json
    assert [r["tag"] for r in rows] == ["team=ads", "team=search"]  # test usage never here
    for row in rows:
        mine = live_with(traffic, "team", row["tag"].split("=")[1])
        assert row["requests"] == len(mine) and row["environment"] == "live"
        assert row["cost_micros"] == sum(i["cost_micros"] for i in mine)
    cc = cli("usage", "--tenant", "acme", "--by", "tag:cc").ok().json
    assert [r["tag"] for r in cc] == ["cc=cc-1", "cc=cc-2"]
    assert sum(r["requests"] for r in cc) == sum(r["requests"] for r in rows)  # same tagged keys
    assert cli("usage", "--tenant", "acme", "--by", "tag:nope").ok().json == []


def test_usage_of_one_tag(cli: Run, traffic: list[dict[str, Any]]) -> None:
    (row,) = cli("usage", "--tenant", "acme", "--tag", "team=search").ok().json
    assert row["requests"] == len(live_with(traffic, "team", "search"))
    days = cli("usage", "--tenant", "acme", "--tag", "team=search", "--granularity", "day")
    assert sum(r["requests"] for r in days.ok().json) == row["requests"]
    human = cli("usage", "--tenant", "acme", "--by", "tag:team", json=False).ok().out
    assert "team=search" in human


@pytest.mark.parametrize(
    "args",
    [
        ("--by", "tag:"),
        ("--by", "tag:a b"),
        ("--by", "tag"),
        ("--tag", "team"),
        ("--tag", "team="),
        ("--tag", "team=a,b"),
        ("--tag", "team=a", "--by", "key"),
        ("--tag", "team=a", "--env", "test"),
    ],
)
def test_bad_tag_queries_exit_2(bad_input: Any, acme: str, args: tuple[str, ...]) -> None:
    bad_input("usage", "--tenant", "acme", *args)


def test_reconcile_counts_the_tag_items(cli: Run, traffic: list[dict[str, Any]]) -> None:
    report = cli("usage", "reconcile", "--tenant", "acme", "--period", "2026-11").ok().json
    assert report["drift"] == 0 and report["ok"]
    assert report["items_compared"] > 0


def test_statement_has_a_per_tag_breakdown(cli: Run, traffic: list[dict[str, Any]]) -> None:
    statement = cli("statement", "--tenant", "acme", "--period", "2026-11").ok().json
    by_tag = {r["tag"]: r for r in statement["by_tag"]}
    assert sorted(by_tag) == ["cc=cc-1", "cc=cc-2", "team=ads", "team=search"]
    search = by_tag["team=search"]
    mine = live_with(traffic, "team", "search")
    assert (search["tag_key"], search["tag_value"]) == ("team", "search")
    assert search["requests"] == len(mine)
    assert search["amount_micros"] == sum(i["cost_micros"] for i in mine)
    assert "overlap" in statement["by_tag_note"]
    # the invoice lines and totals are untouched by tags
    assert statement["totals"]["requests"] == 30
    human = cli("statement", "--tenant", "acme", "--period", "2026-11", json=False).ok().out
    assert "By key tag" in human and "team=search" in human


# -- end to end: a tagged key's request -> its usage event -------------------------------


def test_a_tagged_keys_request_carries_its_tags_into_the_usage_event(
    cli: Run, acme: str, dynamodb: Any
) -> None:
    from functions.authorizer import handler as authorizer
    from tests.integration.api_events import chat_body, events_table, fresh_api, through_gate

    fresh_api()
    authorizer._store = None
    tagged_key = cli("keys", "create", "--tenant", "acme", "--tag", "team=search",
                     "--tag", "cc=42").ok().json  # fmt: skip
    plain_key = cli("keys", "create", "--tenant", "acme").ok().json
    assert tagged_key["tags"] == {"cc": "42", "team": "search"}
    for key in (tagged_key, plain_key):
        reply = through_gate(key["secret"], "POST", "/v1/chat/completions", chat_body())
        assert reply.status == 200, reply.text
    events = {e["key_id"]: e for e in events_table(dynamodb)}
    assert events[tagged_key["key_id"]]["tags"] == {"cc": "42", "team": "search"}
    assert "tags" not in events[plain_key["key_id"]]
    authorizer._store = None
