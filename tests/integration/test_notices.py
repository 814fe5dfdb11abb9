"""Threshold notices end to end on moto: the real aggregator emits them (exactly once under
replays, retries and 32 concurrent writers), the real delivery function POSTs them to a real
receiver on 127.0.0.1 through the local stream pollers, failures are retried, dead-lettered,
listed by the CLI and redriven; bad input is refused."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from functions.common import ddb
from functions.common.config import TableNames
from functions.keys import KeyService
from functions.notices import handler as delivery_handler
from functions.notices.config import NoticeSettings
from functions.notices.emitter import NoticeEmitter, TableLimits
from functions.notices.store import NoticeStore
from functions.notices.stream import DELIVERY_HANDLER, DELIVERY_STREAM
from functions.notices.thresholds import Crossing
from functions.usage import handler as usage_handler
from functions.usage.aggregator import StreamEvent, apply_batch, seq_key
from functions.usage.logic import UsageFact
from functions.usage.store import DynamoRollupStore
from functions.usage.stream import AGGREGATOR_HANDLER, AGGREGATOR_STREAM
from tests.integration.conftest import Result, Run
from tests.integration.test_cli_global import stack  # noqa: F401 -- a fixture: a deployed stack
from tests.notice_support import Receiver, closed_port_url, verification_snippet
from tests.usage_support import Context, lambda_event, stream_record, usage_item
from tollgate.local import aws
from tollgate.local.pollers import Pollers, StreamSource, start_pollers, stream_consumers

TABLES = TableNames()
FAST_AGG = replace(AGGREGATOR_STREAM, batch_size=25, batching_window_s=0, max_retries=3)
FAST_DELIVERY = replace(DELIVERY_STREAM, batching_window_s=0)
QUICK = NoticeSettings(attempts=3, timeout_s=0.3, backoff_s=0.01)
PERIOD = "2026-11"  # tests/usage_support.py's events are in November 2026


@pytest.fixture
def verify() -> Callable[[str, bytes, str], bool]:
    namespace: dict[str, Any] = {}
    exec(compile(verification_snippet(), "docs/billing.md", "exec"), namespace)  # noqa: S102
    fn: Callable[..., bool] = namespace["verify"]
    return lambda secret, body, header: fn(secret, body, header, tolerance_s=600)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def fresh(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Fresh tables, fresh module state, quick delivery settings. The pollers' handlers run
    in this process, on background threads, while the CLI runs in-process on the same
    (captured) stdout: their metric and log lines are kept off it (an ERROR still shows)."""
    import logging

    from functions.common.observability import logger

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")  # read at each flush
    log = logging.getLogger(logger.name)
    level = log.level
    log.setLevel(logging.ERROR)
    ddb.reset_client()
    usage_handler.use_store(None)
    delivery_handler.use_settings(QUICK)
    yield dynamodb
    usage_handler.use_store(None)
    delivery_handler.use_settings(None)
    log.setLevel(level)


@pytest.fixture
def started(fresh: Any, moto_server: aws.MotoServer) -> Iterator[Callable[..., Pollers]]:
    running: list[Pollers] = []

    def start(*sources: StreamSource) -> Pollers:
        chosen = sources or (
            StreamSource("usage-aggregator", "usage", AGGREGATOR_HANDLER, FAST_AGG),
            StreamSource("notice-delivery", "notices", DELIVERY_HANDLER, FAST_DELIVERY),
        )
        pollers = start_pollers(chosen, moto=moto_server, poll_interval_s=0.05)
        running.append(pollers)
        return pollers

    yield start
    for pollers in running:
        pollers()


def metered(
    dynamodb: Any, *, requests: int | None = 10, tokens: int | None = None, spend: int | None = 100
) -> None:
    """Plan ``metered`` (spend_per_month_micros written as the spend helper's plans will
    have it) and tenant ``acme`` on it."""
    svc = KeyService()
    svc.create_plan("metered", requests_per_month=requests, tokens_per_month=tokens, actor="t")
    if spend is not None:
        dynamodb.update_item(
            TableName=TABLES.plans,
            Key={"name": {"S": "metered"}},
            UpdateExpression="SET spend_per_month_micros = :s",
            ExpressionAttributeValues={":s": {"N": str(spend)}},
        )
    svc.create_tenant("acme", plan="metered", actor="t")


def put_events(dynamodb: Any, items: list[dict[str, Any]]) -> None:
    for item in items:
        dynamodb.put_item(
            TableName=TABLES.usage,
            Item={k: ddb.to_ddb(v) for k, v in item.items() if v is not None},
        )


def ten_events(offset: int = 0) -> list[dict[str, Any]]:
    """10 live requests of acme: requests 10/10 (50, 80, 100 %), spend 70/100 (50 %)."""
    return [usage_item(offset + i, cost=7) for i in range(10)]


EXPECTED = {("requests", 50), ("requests", 80), ("requests", 100), ("spend", 50)}


def notices(dynamodb: Any) -> list[dict[str, Any]]:
    return NoticeStore(TABLES.notices).list_notices("acme")


def settle(pollers: Pollers) -> None:
    """Aggregation, then the deliveries its notices started (two rounds of idleness)."""
    for _ in range(3):
        assert pollers.wait_idle(60)


def webhook(cli: Run, url: str) -> str:
    out = cli("tenants", "set-webhook", "acme", "--url", url).ok().json
    assert out["url"] == url and out["secret"].startswith("whsec_")
    return str(out["secret"])


# -- delivered, signed, once ------------------------------------------------------------


def test_thresholds_are_delivered_once_each_and_signed(
    fresh: Any, started: Any, cli: Run, receiver: Receiver, verify: Any
) -> None:
    metered(_client())
    secret = webhook(cli, receiver.url)
    pollers = started()
    put_events(_client(), ten_events())
    settle(pollers)
    assert len(receiver.received) == 4
    seen = set()
    for got in receiver.received:
        assert verify(secret, got.body, got.headers["Tollgate-Signature"])
        event = json.loads(got.body)
        assert got.headers["Tollgate-Event-Id"] == event["id"]
        assert event["type"] == "usage.threshold" and event["tenant_id"] == "acme"
        assert event["period"] == PERIOD
        seen.add((event["metric"], event["threshold_pct"]))
        # used: the level when the threshold was found reached (batches vary in size)
        assert event["limit"] == (10 if event["metric"] == "requests" else 100)
        assert event["used"] * 100 >= event["threshold_pct"] * event["limit"]
        assert event["used"] <= (10 if event["metric"] == "requests" else 70)
    assert seen == EXPECTED
    rows = cli("tenants", "notices", "acme").ok().json
    assert {(r["metric"], r["threshold_pct"]) for r in rows} == EXPECTED
    assert all(r["status"] == "delivered" and r["attempts"] == 1 for r in rows)
    assert cli("tenants", "notices", "acme", "--failed").ok().json == []
    assert len(cli("tenants", "notices", "acme", "--period", PERIOD).ok().json) == 4
    assert cli("tenants", "notices", "acme", "--period", "2026-10").ok().json == []
    # More usage: requests stay past 100 % (nothing sent again), spend crosses 80 and 100.
    put_events(_client(), ten_events(offset=100))
    settle(pollers)
    later = [json.loads(r.body) for r in receiver.received[4:]]
    assert sorted((e["metric"], e["threshold_pct"]) for e in later) == [
        ("spend", 80),
        ("spend", 100),
    ]
    assert all(e["used"] * 100 >= e["threshold_pct"] * e["limit"] for e in later)
    assert pollers.dead_letters == []


def _client() -> Any:
    import boto3

    return boto3.client("dynamodb")


# -- failures: retried, dead-lettered, listed, redriven -----------------------------------


@pytest.mark.parametrize(
    ("mode", "reason"),
    [("fail", "HTTP 500"), ("hang", "timed out after 0.3s"), ("down", "connection failed")],
)
def test_failing_receivers_are_retried_then_dead_lettered_and_redrive_delivers(
    started: Any, cli: Run, receiver: Receiver, verify: Any, mode: str, reason: str
) -> None:
    metered(_client())
    if mode == "down":
        secret = webhook(cli, closed_port_url())
    else:
        receiver.mode, receiver.hang_s = mode, 2.0
        secret = webhook(cli, receiver.url)
    pollers = started()
    put_events(_client(), ten_events())
    settle(pollers)
    failed = cli("tenants", "notices", "acme", "--failed").ok().json
    assert {(r["metric"], r["threshold_pct"]) for r in failed} == EXPECTED
    for row in failed:
        assert row["status"] == "failed" and row["attempts"] == QUICK.attempts
        assert row["last_error"].startswith(reason), row
    if mode != "down":  # every attempt reached the receiver: 3 per notice
        assert len(receiver.received) == 4 * QUICK.attempts
    human = cli("tenants", "notices", "acme", "--failed", json=False).ok().out
    assert reason.split(" ")[0] in human
    # The receiver is fixed; an operator redrives.
    receiver.mode = "ok"
    if mode == "down":
        secret = webhook(cli, receiver.url)
    before = len(receiver.received)
    out = cli("tenants", "redrive-notices", "acme").ok().json
    assert sorted(out["redriven"]) == sorted(r["id"] for r in failed)
    settle(pollers)
    answered = receiver.received[before:]
    assert len(answered) == 4
    assert {json.loads(r.body)["id"] for r in answered} == {r["id"] for r in failed}
    for got in answered:
        assert verify(secret, got.body, got.headers["Tollgate-Signature"])
    rows = cli("tenants", "notices", "acme").ok().json
    assert all(r["status"] == "delivered" and r["redrives"] == 1 for r in rows)
    assert all(r["last_error"] is None for r in rows)
    # A second redrive finds nothing to send.
    assert cli("tenants", "redrive-notices", "acme").ok().json["redriven"] == []
    settle(pollers)
    assert len(receiver.received) == before + 4
    assert pollers.dead_letters == []


def test_no_webhook_is_a_dead_letter_until_one_is_registered(
    started: Any, cli: Run, receiver: Receiver
) -> None:
    metered(_client())
    pollers = started()
    put_events(_client(), ten_events())
    settle(pollers)
    failed = cli("tenants", "notices", "acme", "--failed").ok().json
    assert len(failed) == 4 and all("no webhook" in r["last_error"] for r in failed)
    webhook(cli, receiver.url)
    one = failed[0]["id"]
    assert cli("tenants", "redrive-notices", "acme", "--id", one).ok().json["redriven"] == [one]
    settle(pollers)
    assert [json.loads(r.body)["id"] for r in receiver.received] == [one]
    assert len(cli("tenants", "notices", "acme", "--failed").ok().json) == 3


# -- exactly once: replays, retries, concurrency -------------------------------------------


def test_replayed_stream_batches_emit_nothing_twice(fresh: Any) -> None:
    metered(fresh)
    records = [stream_record(item, 1000 + n) for n, item in enumerate(ten_events())]
    usage_handler.handler(lambda_event(records), Context())
    first = notices(fresh)
    assert {(n["metric"], n["threshold_pct"]) for n in first} == EXPECTED
    for replay in (records, records[3:], records[:7], records[5:6]):
        usage_handler.use_notices(None)  # a new container: nothing remembered
        response = usage_handler.handler(lambda_event(replay), Context())
        assert response["batchItemFailures"] == []
    assert notices(fresh) == first  # same items, same created_at: never written again


class Flaky:
    """The notices table failing its first ``n`` puts (throttled), then the real store."""

    def __init__(self, n: int) -> None:
        self.real, self.left = NoticeStore(TABLES.notices), n

    def put_notice(self, crossing: Crossing) -> bool:
        if self.left > 0:
            self.left -= 1
            raise RuntimeError("ProvisionedThroughputExceededException")
        return self.real.put_notice(crossing)


def test_a_failed_notice_write_has_the_records_delivered_again(fresh: Any) -> None:
    metered(fresh)
    records = [stream_record(item, 2000 + n) for n, item in enumerate(ten_events())]
    limits = TableLimits(TABLES.tenants, TABLES.plans)
    usage_handler.use_notices(NoticeEmitter(Flaky(1), limits))
    with pytest.raises(usage_handler.BatchNotApplied):  # records from the first: bisect
        usage_handler.handler(lambda_event(records), Context())
    assert notices(fresh) == []
    # Lambda delivers the batch again: the rollups refuse it (marks), the notices are written.
    response = usage_handler.handler(lambda_event(records), Context())
    assert response["batchItemFailures"] == []
    assert {(n["metric"], n["threshold_pct"]) for n in notices(fresh)} == EXPECTED
    from functions.usage.reports import rollups

    ((_, total),) = rollups("acme", f"month#{PERIOD}#all#")
    assert total.requests == 10  # counted once


def test_32_concurrent_writers_crossing_thresholds_emit_each_once(
    fresh: Any, started: Any, cli: Run, receiver: Receiver, verify: Any
) -> None:
    """32 shards, each its own container (its own emitter, nothing shared but the tables),
    write the same tenant's month total at once."""
    clients, per_client = 32, 5
    metered(fresh, requests=clients * per_client, tokens=clients * per_client * 15, spend=None)
    secret = webhook(cli, receiver.url)
    store = DynamoRollupStore(TABLES.rollups)
    limits = TableLimits(TABLES.tenants, TABLES.plans)
    emitters = [NoticeEmitter(NoticeStore(TABLES.notices), limits) for _ in range(clients)]
    barrier = threading.Barrier(clients)
    errors: list[BaseException] = []

    def client(n: int) -> None:
        try:
            batch = [
                StreamEvent(
                    seq=seq_key(10_000 + i), at_s=1_700_000_000,
                    fact=UsageFact.from_item(usage_item(n * 100 + i)),
                )
                for i in range(per_client)
            ]  # fmt: skip
            barrier.wait()
            for event in batch:  # one record per batch: 5 crossings' worth of writes each
                result = apply_batch(
                    f"shardId-{n:04d}", [event], store, now_s=1_700_000_000,
                    observe=emitters[n].observe,
                )  # fmt: skip
                assert result.retry_from is None
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    emitted = [c for e in emitters for c in e.emitted]
    expected = {(m, p) for m in ("requests", "tokens") for p in (50, 80, 100)}
    assert sorted((c.metric, c.threshold_pct) for c in emitted) == sorted(expected)
    assert {(n["metric"], n["threshold_pct"]) for n in notices(fresh)} == expected
    # Delivered exactly once each (the local delivery poller, real HTTP).
    pollers = started(StreamSource("notice-delivery", "notices", DELIVERY_HANDLER, FAST_DELIVERY))
    settle(pollers)
    ids = [json.loads(r.body)["id"] for r in receiver.received]
    assert sorted(ids) == sorted({n["id"] for n in notices(fresh)}) and len(ids) == 6
    assert all(verify(secret, r.body, r.headers["Tollgate-Signature"]) for r in receiver.received)


def test_the_local_stack_runs_notice_delivery() -> None:
    sources = {s.name: s for s in stream_consumers()}
    source = sources["notice-delivery"]
    assert source.table == "notices" and source.settings is DELIVERY_STREAM
    assert source.load() is delivery_handler.handler
    pattern = DELIVERY_STREAM.filter_pattern()
    assert pattern["dynamodb"] == {"NewImage": {"status": {"S": ["pending"]}}}


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "ftp://billing.example/h",
        "http://billing.example/h",  # plain http off this machine
        "https://",
        "https://user:secret@billing.example/h",
        "https://billing.example:99999/h",
        "",
    ],
)
def test_bad_webhook_urls_are_refused(
    fresh: Any, bad_input: Callable[..., Result], url: str
) -> None:
    metered(fresh)
    result = bad_input("tenants", "set-webhook", "acme", "--url", url)
    assert "secret" not in result.err.replace("--url must not carry a user or password", "")


def test_bad_notice_commands_are_refused(fresh: Any, bad_input: Callable[..., Result]) -> None:
    metered(fresh)
    bad_input("tenants", "set-webhook", "nobody", "--url", "https://billing.example/h")
    bad_input("tenants", "notices", "nobody")
    bad_input("tenants", "notices", "acme", "--period", "2026-13")
    bad_input("tenants", "redrive-notices", "acme", "--id", "ntc_nope")


def test_the_secret_is_shown_once_and_never_again(fresh: Any, cli: Run, receiver: Receiver) -> None:
    metered(fresh)
    first = webhook(cli, receiver.url)
    second = webhook(cli, receiver.url)  # registering again: a new secret
    assert first != second
    for argv in (("tenants", "show", "acme"), ("tenants", "notices", "acme"),
                 ("tenants", "list")):  # fmt: skip
        out = cli(*argv).ok()
        assert second not in out.out + out.err and "whsec_" not in out.out


@pytest.mark.usefixtures("stack")
def test_with_stack_only_https_is_accepted_and_goes_to_the_stacks_table(
    cli: Run, dynamodb: Any
) -> None:
    deployed = TableNames.with_prefix("deployed")  # the stack fixture's tables
    cli("--stack", "tollgate-prod", "plans", "create", "pro").ok()
    cli("--stack", "tollgate-prod", "tenants", "create", "bigco", "--plan", "pro").ok()
    for url in ("http://127.0.0.1:9/h", "http://localhost/h"):
        result = cli("--stack", "tollgate-prod", "tenants", "set-webhook", "bigco", "--url", url)
        assert result.code == 2 and "https" in result.err and result.out == ""
    assert not dynamodb.scan(TableName=deployed.notices)["Items"]
    url = "https://billing.bigco.example/hooks"
    out = cli("--stack", "tollgate-prod", "tenants", "set-webhook", "bigco", "--url", url).ok()
    (item,) = dynamodb.scan(TableName=deployed.notices)["Items"]
    assert item["url"]["S"] == url and item["secret"]["S"] == out.json["secret"]
    assert not dynamodb.scan(TableName=TABLES.notices)["Items"]
    assert cli("--stack", "tollgate-prod", "tenants", "notices", "bigco").ok().json == []
