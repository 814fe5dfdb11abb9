"""``tollgate usage``, ``usage reconcile``, ``usage dead-letters`` and ``tollgate statement``
on moto: rollups written by the real aggregator, compared with the raw events."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import Any

import pytest

from functions.api.usage import cost_micros
from functions.common.config import TableNames
from tests.integration.conftest import Run
from tests.usage_support import usage_item

PROMPT_PER_1K, COMPLETION_PER_1K = 2_000, 6_000  # micro-dollars: $0.002 and $0.006 per 1k
TABLES = TableNames()


# acme and aggregate_events: tests/integration/conftest.py


def priced(n: int, **kw: Any) -> dict[str, Any]:
    prompt, completion = 100 + 37 * n, 20 + 11 * n
    cost = cost_micros(prompt, completion, PROMPT_PER_1K, COMPLETION_PER_1K)
    return usage_item(n, prompt=prompt, completion=completion, cost=cost, plan="gold", **kw)


@pytest.fixture
def traffic(acme: str, aggregate_events: Any) -> list[dict[str, Any]]:
    items = [
        priced(i, key=("k-live-1", "k-live-2")[i % 2], principal=("agent-a", "svc-b")[i % 2],
               model=("tollgate-echo", "bedrock:haiku")[i % 3 == 0])
        for i in range(40)
    ] + [priced(100 + i, key="k-test", principal="agent-a", env="test") for i in range(7)] + [
        priced(200, key="k-live-1", principal="agent-a", status="error"),
        priced(201, key="k-live-1", principal="agent-a", ts_ms=1_796_169_600_000),  # December
    ]  # fmt: skip
    return list(aggregate_events(items))


def live_november(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for i in items if i["environment"] == "live" and i["ts"] < 1_796_169_600_000]


# -- tollgate usage ------------------------------------------------------------------------


def test_usage_shows_billable_month_totals(cli: Run, traffic: list[dict[str, Any]]) -> None:
    rows = cli("usage", "--tenant", "acme").ok().json
    assert [r["period"] for r in rows] == ["2026-11", "2026-12"]
    nov = rows[0]
    live = live_november(traffic)
    assert nov["tenant_id"] == "acme" and nov["environment"] == "live"
    assert nov["requests"] == len(live)
    assert nov["errors"] == 1
    assert nov["prompt_tokens"] == sum(i["prompt_tokens"] for i in live)
    assert nov["completion_tokens"] == sum(i["completion_tokens"] for i in live)
    assert Decimal(nov["cost_usd"]) * 1_000_000 == sum(i["cost_micros"] for i in live)
    assert isinstance(nov["cost_usd"], str) and len(nov["cost_usd"].split(".")[1]) == 6


def test_usage_by_key_principal_model(cli: Run, traffic: list[dict[str, Any]]) -> None:
    by_key = cli("usage", "--tenant", "acme", "--by", "key", "--period", "2026-11").ok().json
    assert {r["key_id"]: r["requests"] for r in by_key} == {
        "k-live-1": 21, "k-live-2": 20, "k-test": 7
    }  # fmt: skip
    one = cli("usage", "--tenant", "acme", "--principal", "agent-a", "--period", "2026-11")
    (row,) = one.ok().json
    assert row["principal"] == "agent-a" and row["requests"] == 21  # test usage not included
    models = cli("usage", "--tenant", "acme", "--by", "model", "--period", "2026-11").ok().json
    assert sorted(r["model"] for r in models) == ["bedrock:haiku", "tollgate-echo"]
    assert sum(r["requests"] for r in models) == len(live_november(traffic))


def test_test_usage_is_per_key_and_a_tenant_total(cli: Run, traffic: list[dict]) -> None:
    (key_row,) = cli("usage", "--tenant", "acme", "--key", "k-test").ok().json
    (env_row,) = cli("usage", "--tenant", "acme", "--env", "test").ok().json
    test_items = [i for i in traffic if i["environment"] == "test"]
    for row in (key_row, env_row):
        assert row["requests"] == len(test_items)
        assert Decimal(row["cost_usd"]) * 1_000_000 == sum(i["cost_micros"] for i in test_items)
    assert env_row["environment"] == "test"


def test_usage_by_day_and_hour(cli: Run, traffic: list[dict[str, Any]]) -> None:
    days = cli("usage", "--tenant", "acme", "--granularity", "day", "--period", "2026-11")
    assert [r["period"] for r in days.ok().json] == ["2026-11-01"]
    hours = cli("usage", "--tenant", "acme", "--granularity", "hour", "--period", "2026-11-01")
    rows = hours.ok().json
    assert [r["period"] for r in rows] == sorted(r["period"] for r in rows)
    assert sum(r["requests"] for r in rows) == len(live_november(traffic))


def test_usage_human_output(cli: Run, traffic: list[dict[str, Any]]) -> None:
    out = cli("usage", "--tenant", "acme", "--by", "key", json=False).ok().out
    assert "k-live-1" in out and "cost USD" in out


@pytest.mark.parametrize(
    "args",
    [
        ("usage", "--tenant", "acme", "--granularity", "week"),
        ("usage", "--tenant", "acme", "--period", "2026-13"),
        ("usage", "--tenant", "acme", "--granularity", "month", "--period", "2026-11-05"),
        ("usage", "--tenant", "acme", "--by", "key", "--principal", "p"),
        ("usage", "--tenant", "acme", "--by", "colour"),
        ("usage", "--tenant", "acme", "--env", "test", "--principal", "p"),
        ("usage", "--tenant", "acme", "--env", "staging"),
        ("usage", "--tenant", "nobody"),
        ("usage",),
        ("usage", "reconcile", "--tenant", "acme", "--period", "November"),
        ("statement", "--tenant", "acme", "--period", "2026-11-05"),
        ("statement", "--tenant", "acme", "--period", "2026-11", "--format", "xml"),
        ("statement", "--tenant", "nobody", "--period", "2026-11"),
    ],
)
def test_bad_input_exits_2(bad_input: Any, acme: str, args: tuple[str, ...]) -> None:
    bad_input(*args)


# -- reconcile -----------------------------------------------------------------------------


@pytest.mark.parametrize("period", ["2026-11", "2026-11-01", "2026-11-01T00", "2026-12"])
def test_reconcile_finds_no_drift(cli: Run, traffic: list[dict[str, Any]], period: str) -> None:
    report = cli("usage", "reconcile", "--tenant", "acme", "--period", period).ok().json
    assert report["drift"] == 0 and report["ok"] and report["mismatches"] == []
    assert report["events"] > 0 and report["items_compared"] > 0


def test_reconcile_reports_drift_and_exits_1(
    cli: Run, traffic: list[dict[str, Any]], dynamodb: Any
) -> None:
    dynamodb.update_item(  # a rollup that over-counts by 52 dollars
        TableName=TABLES.rollups,
        Key={"tenant_id": {"S": "acme"}, "sk": {"S": "day#2026-11-01#principal#svc-b"}},
        UpdateExpression="ADD cost_micros :c",
        ExpressionAttributeValues={":c": {"N": "52000000"}},
    )
    dynamodb.delete_item(  # and one that was lost
        TableName=TABLES.rollups,
        Key={"tenant_id": {"S": "acme"}, "sk": {"S": "hour#2026-11-01T01#key#k-test"}},
    )
    result = cli("usage", "reconcile", "--tenant", "acme", "--period", "2026-11")
    assert result.code == 1
    report = result.json
    hour = (1_793_494_800_000, 1_793_498_400_000)  # 2026-11-01T01
    lost = [i for i in traffic if i["key_id"] == "k-test" and hour[0] <= i["ts"] < hour[1]]
    assert lost
    assert report["drift"] == 52_000_000 + sum(
        1 + i["prompt_tokens"] + i["completion_tokens"] + i["cost_micros"] for i in lost
    )
    assert {m["sk"] for m in report["mismatches"]} == {
        "day#2026-11-01#principal#svc-b", "hour#2026-11-01T01#key#k-test"
    }  # fmt: skip
    assert result.err.startswith("error: drift")
    human = cli("usage", "reconcile", "--tenant", "acme", "--period", "2026-11", json=False)
    assert human.code == 1 and "rollup says" in human.out


# -- statement -----------------------------------------------------------------------------


def test_statement_json_totals_equal_the_raw_events(cli: Run, traffic: list[dict]) -> None:
    data = cli("statement", "--tenant", "acme", "--period", "2026-11", "--format", "json")
    statement = data.ok().json
    live = live_november(traffic)
    totals = statement["totals"]
    assert totals["amount_micros"] == sum(i["cost_micros"] for i in live)
    assert Decimal(totals["amount_usd"]) * 1_000_000 == totals["amount_micros"]
    assert totals["requests"] == len(live)
    assert totals["prompt_tokens"] == sum(i["prompt_tokens"] for i in live)
    lines = statement["line_items"]
    assert {(x["model"], x["principal"]) for x in lines} == {
        (m, p) for m in ("tollgate-echo", "bedrock:haiku") for p in ("agent-a", "svc-b")
    }
    assert sum(x["amount_micros"] for x in lines) == totals["amount_micros"]
    for line in lines:
        assert line["plan"] == "gold"
        assert line["unit_price_prompt_per_1k_usd"] == "0.002000"
        assert line["unit_price_completion_per_1k_usd"] == "0.006000"
        mine = [
            i for i in live if (i["model"], i["principal"]) == (line["model"], line["principal"])
        ]
        assert line["amount_micros"] == sum(i["cost_micros"] for i in mine)
    # The global --json gives the same document.
    assert cli("statement", "--tenant", "acme", "--period", "2026-11").ok().json["totals"] == totals


def test_statement_csv_never_shows_test_keys(cli: Run, traffic: list[dict[str, Any]]) -> None:
    out = cli("statement", "--tenant", "acme", "--period", "2026-11", "--format", "csv",
              json=False).ok().out  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(out)))
    total = rows[-1]
    assert total["model"] == "TOTAL"
    live = live_november(traffic)
    assert Decimal(total["amount_usd"]) * 1_000_000 == sum(i["cost_micros"] for i in live)
    assert sum(Decimal(r["amount_usd"]) for r in rows[:-1]) == Decimal(total["amount_usd"])
    assert int(total["requests"]) == len(live)  # the 7 test-key requests are not billed
    assert all(r["tenant_id"] == "acme" and r["period"] == "2026-11" for r in rows)


def test_a_month_without_usage_has_an_empty_statement(cli: Run, acme: str) -> None:
    statement = cli("statement", "--tenant", "acme", "--period", "2026-10").ok().json
    assert statement["line_items"] == [] and statement["totals"]["amount_usd"] == "0.000000"
    human = cli("statement", "--tenant", "acme", "--period", "2026-10", json=False).ok().out
    assert "Total: 0 requests" in human


# -- dead letters --------------------------------------------------------------------------


def test_dead_letters_are_listed_and_left_on_the_queue(cli: Run, moto_server: Any) -> None:
    import boto3

    sqs = boto3.client("sqs", endpoint_url=moto_server.endpoint)
    url = sqs.create_queue(QueueName="tollgate-usage-aggregator-dlq")["QueueUrl"]
    body = {
        "requestContext": {"condition": "RetryAttemptsExhausted"},
        "timestamp": "2026-11-02T00:00:00Z",
        "DDBStreamBatchInfo": {"shardId": "shardId-1", "startSequenceNumber": "7",
                               "endSequenceNumber": "9", "batchSize": 3},
    }  # fmt: skip
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))
    for _ in range(2):  # listing does not consume
        (letter,) = cli("usage", "dead-letters").ok().json
        assert letter["DDBStreamBatchInfo"]["batchSize"] == 3
    assert "shardId-1" in cli("usage", "dead-letters", json=False).ok().out


def test_dead_letters_without_a_queue_is_an_empty_list(cli: Run) -> None:
    result = cli("usage", "dead-letters").ok()
    assert result.json == []


def test_estimated_events_are_counted_in_rows_and_statements(
    cli: Run, acme: str, aggregate_events: Any
) -> None:
    """Events billed at a reservation's upper bound (``estimated``: a provider timeout, a cut
    stream, a killed function swept) are counted apart: a usage column, a statement field."""
    items = [priced(i, key="k-live-1", principal="agent-a") for i in range(3)] + [
        {**priced(10 + i, key="k-live-1", principal="agent-a"), "estimated": True} for i in range(2)
    ]
    aggregate_events(items)
    [row] = cli("usage", "--tenant", "acme", "--period", "2026-11").ok().json
    assert (row["requests"], row["estimated"]) == (5, 2)
    [by_key] = cli("usage", "--tenant", "acme", "--by", "key", "--period", "2026-11").ok().json
    assert by_key["estimated"] == 2
    human = cli("usage", "--tenant", "acme", "--period", "2026-11", json=False).ok().out
    assert "estimated" in human
    statement = cli("statement", "--tenant", "acme", "--period", "2026-11").ok().json
    assert statement["totals"]["estimated"] == 2
    assert [line["estimated"] for line in statement["line_items"]] == [2]
    out = cli("statement", "--tenant", "acme", "--period", "2026-11", "--format", "csv",
              json=False).ok().out  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["estimated"] for r in rows] == ["2", "2"]  # the line, then TOTAL
    assert (
        cli("usage", "reconcile", "--tenant", "acme", "--period", "2026-11").ok().json["drift"] == 0
    )
