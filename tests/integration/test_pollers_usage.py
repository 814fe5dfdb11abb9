"""The local stream pollers on moto's server: a real table stream feeding the real handlers.

Lambda's contract, as the pollers emulate it: Lambda-shaped events, the mapping's filter,
per-shard order, retry from the lowest reported failure, bisection on errors, bounded
retries then a dead letter (log, list, SQS queue), and trimming of what was read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from functions.common import ddb
from functions.common.config import TableNames
from functions.usage import handler as usage_handler
from functions.usage.logic import UsageFact, aggregate
from functions.usage.reports import reconcile
from functions.usage.stream import AGGREGATOR_HANDLER, AGGREGATOR_STREAM
from tests.usage_support import nonzero, usage_item
from tollgate.local import aws
from tollgate.local.pollers import (
    Pollers,
    StreamSource,
    dead_letter_queue_name,
    start_pollers,
    stream_consumers,
)

FAST = replace(AGGREGATOR_STREAM, batch_size=25, batching_window_s=0, max_retries=3)
TABLES = TableNames()


@pytest.fixture
def started(dynamodb: Any, moto_server: aws.MotoServer) -> Iterator[Callable[..., Pollers]]:
    running: list[Pollers] = []
    ddb.reset_client()
    usage_handler.use_store(None)

    def start(*sources: StreamSource, **kwargs: Any) -> Pollers:
        pollers = start_pollers(sources or None, moto=moto_server, poll_interval_s=0.05, **kwargs)
        running.append(pollers)
        return pollers

    yield start
    for pollers in running:
        pollers()
    usage_handler.use_store(None)


def put_events(client: Any, items: list[dict[str, Any]]) -> None:
    for item in items:
        client.put_item(
            TableName=TABLES.usage,
            Item={k: ddb.to_ddb(v) for k, v in item.items() if v is not None},
            ConditionExpression="attribute_not_exists(request_id)",
        )


def stored_rollups(client: Any) -> dict[Any, dict[str, int]]:
    from functions.usage.reports import rollups

    out = {}
    for tenant in ("acme", "globex"):
        out.update(dict(rollups(tenant, "")))
    return nonzero(out)


def expected(items: list[dict[str, Any]]) -> dict[Any, dict[str, int]]:
    return nonzero(aggregate(UsageFact.from_item(i) for i in items))


def events(n: int, offset: int = 0) -> list[dict[str, Any]]:
    return [
        usage_item(
            offset + i,
            tenant="acme" if i % 3 else "globex",
            key=f"k{i % 5}",
            principal=f"p{i % 2}",
            env="test" if i % 7 == 0 else "live",
            cost=i * 13,
        )
        for i in range(n)
    ]


def test_the_local_stack_runs_the_deployed_consumers_with_their_settings() -> None:
    sources = {s.name: s for s in stream_consumers()}
    source = sources["usage-aggregator"]
    assert source.table == "usage" and source.handler == AGGREGATOR_HANDLER
    assert source.settings is AGGREGATOR_STREAM
    assert sources["spike-detector"].table == "usage"
    for s in sources.values():
        s.load()  # every handler imports


def test_usage_events_reach_the_rollups_exactly(dynamodb: Any, started: Any) -> None:
    pollers = started(StreamSource("agg", "usage", AGGREGATOR_HANDLER, FAST))
    items = events(120)
    put_events(dynamodb, items)
    assert pollers.wait_idle(30)
    assert stored_rollups(dynamodb) == expected(items)
    assert reconcile("acme", "2026-11").drift == 0
    assert pollers.dead_letters == []
    # Batches of at most 25: at least 5 invocations for 120 records.
    assert pollers.stats["invocations"]["agg"] >= 120 // 25


def test_events_are_lambda_shaped_filtered_and_in_order(dynamodb: Any, started: Any) -> None:
    seen: list[dict[str, Any]] = []

    def record(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.append(event)
        return {"batchItemFailures": [], "state": {}}

    pollers = started(StreamSource("rec", "usage", record, FAST))
    items = events(30)
    put_events(dynamodb, items)
    dynamodb.update_item(  # a MODIFY: the INSERT-only filter drops it
        TableName=TABLES.usage,
        Key={"request_id": {"S": items[0]["request_id"]}},
        UpdateExpression="SET latency_ms = :l",
        ExpressionAttributeValues={":l": {"N": "99"}},
    )
    assert pollers.wait_idle(30)
    records = [r for e in seen for r in e["Records"]]
    assert [r["dynamodb"]["NewImage"]["request_id"]["S"] for r in records] == [
        i["request_id"] for i in items
    ]
    seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert seqs == sorted(seqs)
    first = seen[0]
    assert first["shardId"].startswith("shardId-") and first["state"] == {}
    assert set(first["window"]) == {"start", "end"}
    for r in records:
        assert r["eventName"] == "INSERT" and r["eventSource"] == "aws:dynamodb"
        assert r["eventSourceARN"].startswith("arn:aws:dynamodb:us-east-1:")
        assert "/stream/" in r["eventSourceARN"] and r["awsRegion"] == "us-east-1"
        assert isinstance(r["dynamodb"]["ApproximateCreationDateTime"], int)
    assert all(len(e["Records"]) <= FAST.batch_size for e in seen)


def test_failed_records_are_retried_from_the_first_failure(dynamodb: Any, started: Any) -> None:
    """A flaky handler wrapping the real one: partial failures and exceptions, retried."""
    calls = {"n": 0}
    lock = threading.Lock()

    def flaky(event: dict[str, Any], context: Any) -> Any:
        with lock:
            calls["n"] += 1
            n = calls["n"]
        if n % 3 == 1:
            raise RuntimeError("injected: the whole invocation fails")
        response = usage_handler.handler(event, context)
        if n % 3 == 2 and len(event["Records"]) > 2:
            # Claim the second half failed although it was applied: a lost reply.
            half = event["Records"][len(event["Records"]) // 2 :]
            response["batchItemFailures"] = [
                {"itemIdentifier": r["dynamodb"]["SequenceNumber"]} for r in half
            ]
        return response

    pollers = started(StreamSource("agg", "usage", flaky, replace(FAST, max_retries=20)))
    items = events(90)
    put_events(dynamodb, items)
    assert pollers.wait_idle(60)
    assert pollers.dead_letters == []
    assert calls["n"] > 90 // 25
    assert stored_rollups(dynamodb) == expected(items)
    assert reconcile("globex", "2026-11").drift == 0


def test_a_poison_record_is_bisected_out_and_dead_lettered(
    dynamodb: Any, started: Any, moto_server: aws.MotoServer
) -> None:
    pollers = started(StreamSource("usage-aggregator", "usage", AGGREGATOR_HANDLER, FAST))
    good = events(40)
    poison = {**usage_item(999), "tenant_id": None}  # no tenant: the aggregator refuses it
    put_events(dynamodb, [*good[:17], poison, *good[17:]])
    assert pollers.wait_idle(60)
    (letter,) = pollers.dead_letters
    assert letter.count == 1
    assert letter.records[0]["dynamodb"]["NewImage"]["request_id"]["S"] == poison["request_id"]
    assert letter.reason.startswith("BatchNotApplied: no record of the batch applied")
    # Everything else counted exactly once.
    assert stored_rollups(dynamodb) == expected(good)
    # The dead letter is on the SQS queue, in the on-failure destination's shape.
    import boto3

    sqs = boto3.client("sqs", endpoint_url=moto_server.endpoint)
    url = sqs.get_queue_url(QueueName=dead_letter_queue_name("usage-aggregator"))["QueueUrl"]
    (message,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    import json

    body = json.loads(message["Body"])
    info = body["DDBStreamBatchInfo"]
    assert info["batchSize"] == 1 and info["startSequenceNumber"] == letter.first_sequence_number
    assert body["requestContext"]["condition"] == "RetryAttemptsExhausted"


def test_a_handler_that_keeps_failing_dead_letters_after_bounded_retries(
    dynamodb: Any, started: Any
) -> None:
    calls: list[int] = []

    def broken(event: dict[str, Any], context: Any) -> Any:
        calls.append(len(event["Records"]))
        return {"batchItemFailures": [{"itemIdentifier": "not-a-sequence-number"}], "state": {}}

    settings = replace(FAST, max_retries=2, bisect_on_error=False)
    put_events(dynamodb, events(5))  # before the poller starts: one read gets all five
    pollers = started(StreamSource("b", "usage", broken, settings), dead_letter_queues=False)
    assert pollers.wait_idle(30)
    (letter,) = pollers.dead_letters
    assert letter.count == 5 and calls == [5, 5, 5]  # the first try and two retries


def test_an_answer_without_state_fails_when_a_tumbling_window_is_set(
    dynamodb: Any, started: Any
) -> None:
    def stateless(event: dict[str, Any], context: Any) -> Any:
        return {"batchItemFailures": []}

    settings = replace(FAST, max_retries=1, bisect_on_error=False)
    put_events(dynamodb, events(3))
    pollers = started(StreamSource("s", "usage", stateless, settings), dead_letter_queues=False)
    assert pollers.wait_idle(30)
    assert [letter.count for letter in pollers.dead_letters] == [3]


def test_what_every_poller_has_read_is_trimmed_from_moto(dynamodb: Any, started: Any) -> None:
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodbstreams.models import dynamodbstreams_backends

    got: dict[str, int] = {"a": 0, "b": 0}

    def counter(name: str) -> Any:
        def handle(event: dict[str, Any], context: Any) -> Any:
            got[name] += len(event["Records"])
            return {"state": {}}

        return handle

    pollers = started(
        StreamSource("a", "usage", counter("a"), FAST),
        StreamSource("b", "usage", counter("b"), replace(FAST, batch_size=7)),
    )
    items = events(200)
    put_events(dynamodb, items)
    assert pollers.wait_idle(30)
    put_events(dynamodb, events(3, offset=500))  # a later read triggers the (rate-limited) trim
    import time

    time.sleep(1.1)
    assert pollers.wait_idle(30)
    assert got == {"a": 203, "b": 203}  # both consumers saw every record
    shard = dynamodb_backends["123456789012"]["us-east-1"].get_table(TABLES.usage).stream_shard
    assert shard is not None
    assert len(shard.items) < 10 and pollers.stats["trimmed"] >= 200
    iterators = dynamodbstreams_backends["123456789012"]["us-east-1"].shard_iterators
    assert len(iterators) <= 4  # only the pollers' current ones


def test_the_real_mapping_settings_batch_by_window(dynamodb: Any, started: Any) -> None:
    """With the deployed settings (1,000 records or 5 s), a few events arrive in one batch."""
    sizes: list[int] = []

    def handle(event: dict[str, Any], context: Any) -> Any:
        sizes.append(len(event["Records"]))
        return usage_handler.handler(event, context)

    pollers = started(StreamSource("agg", "usage", handle, AGGREGATOR_STREAM))
    items = events(12)
    put_events(dynamodb, items)
    assert pollers.wait_idle(30)
    assert sizes == [12]
    assert stored_rollups(dynamodb) == expected(items)
