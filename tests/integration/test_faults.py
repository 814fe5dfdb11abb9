"""The fault injection of the local stack (tollgate/local/faults.py) on moto's server.

DynamoDB faults answer as DynamoDB does (status, error code, botocore retries them) and
never touch moto's state; other services pass untouched; the switch works at runtime;
stream handlers crash before or after their work and the pollers still count each usage
event exactly once."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from functions.common import ddb
from functions.common.config import TableNames
from functions.usage import handler as usage_handler
from functions.usage.reports import reconcile
from functions.usage.stream import AGGREGATOR_HANDLER, AGGREGATOR_STREAM
from tests.usage_support import usage_item
from tollgate.local import aws
from tollgate.local.faults import (
    CRASH,
    CRASH_AFTER,
    CrashingHandler,
    FaultPlan,
    Faults,
    FaultSpecError,
    InjectedCrash,
    crashing_sources,
    set_trace,
    tag_client,
)
from tollgate.local.pollers import StreamSource, start_pollers

TABLES = TableNames()
NO_RETRY = botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture
def faults(moto_server: aws.MotoServer) -> Iterator[Faults]:
    f = moto_server.faults
    f.off()
    f.injected.clear()
    f.seen.clear()
    yield f
    f.off()
    f.injected.clear()


def client(server: aws.MotoServer, config: botocore.config.Config = NO_RETRY) -> Any:
    return boto3.client("dynamodb", endpoint_url=server.endpoint, config=config)


def put(c: Any, rid: str) -> None:
    c.put_item(TableName=TABLES.plans, Item={"name": {"S": rid}, "created_at": {"S": "x"}})


def exists(c: Any, rid: str) -> bool:
    item = c.get_item(TableName=TABLES.plans, Key={"name": {"S": rid}}, ConsistentRead=True)
    return "Item" in item


# -- the plan ---------------------------------------------------------------------------------
def test_plan_parses_the_env_syntax() -> None:
    plan = FaultPlan.parse(" throttle=0.05, error=0.02,crash=0.1 ,crash_after=0.05")
    assert plan == FaultPlan(throttle=0.05, error=0.02, crash=0.1, crash_after=0.05)
    assert FaultPlan.parse("") == FaultPlan()
    assert Faults.from_env({}) is None
    assert Faults.from_env({"TOLLGATE_FAULTS": "error=1"}).plan.error == 1.0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "text",
    ["throttle", "throttle=x", "throttle=2", "error=-0.1", "boom=0.1", "error=0.5,error=0.1",
     "throttle=0.6,error=0.6", "crash=0.7,crash_after=0.4"],
)  # fmt: skip
def test_plan_refuses_bad_specs(text: str) -> None:
    with pytest.raises(FaultSpecError):
        FaultPlan.parse(text)


def test_a_bad_env_spec_stops_the_stack_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TOLLGATE_FAULTS", "throttle=lots")
    with pytest.raises(SystemExit) as stopped:
        aws.start()
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "TOLLGATE_FAULTS" in err[0]


def test_the_env_spec_switches_faults_on_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLGATE_FAULTS", "error=1")
    server = aws.start()
    try:
        with pytest.raises(ClientError) as failed:
            client(server).list_tables()
        assert failed.value.response["Error"]["Code"] == "InternalServerError"
    finally:
        server.stop()


# -- DynamoDB errors --------------------------------------------------------------------------
def test_throttling_answers_as_dynamodb_and_writes_nothing(
    dynamodb: Any, moto_server: aws.MotoServer, faults: Faults
) -> None:
    c = client(moto_server)
    faults.set(throttle=1.0)
    codes = set()
    for i in range(20):
        with pytest.raises(ClientError) as failed:
            put(c, f"thr-{i}")
        err = failed.value.response
        assert err["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert len(err["ResponseMetadata"]["RequestId"]) == 52
        codes.add(err["Error"]["Code"])
    assert codes == {"ProvisionedThroughputExceededException", "ThrottlingException"}
    faults.off()
    assert not any(exists(c, f"thr-{i}") for i in range(20))
    assert faults.counts() == {"throttle": 20}
    assert {f.operation for f in faults.injected} == {"PutItem"}
    assert {f.table for f in faults.injected} == {TABLES.plans}


def test_internal_errors_answer_500_and_write_nothing(
    dynamodb: Any, moto_server: aws.MotoServer, faults: Faults
) -> None:
    c = client(moto_server)
    faults.set(error=1.0)
    with pytest.raises(ClientError) as failed:
        put(c, "err-1")
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert failed.value.response["Error"]["Code"] == "InternalServerError"
    faults.off()
    assert not exists(c, "err-1")


def test_botocore_retries_the_injected_faults(
    dynamodb: Any, moto_server: aws.MotoServer, faults: Faults
) -> None:
    """At 30% faults, standard retries (8 attempts here) get every write through, once."""
    retrying = botocore.config.Config(retries={"total_max_attempts": 8, "mode": "standard"})
    c = client(moto_server, retrying)
    faults.seed = 7
    faults.set(throttle=0.15, error=0.15)
    for i in range(30):
        put(c, f"retry-{i}")
    faults.off()
    assert all(exists(c, f"retry-{i}") for i in range(30))
    assert sum(faults.counts().values()) > 3
    assert faults.seen["PutItem"] == 30 + sum(faults.counts().values())


def test_other_services_and_stream_reads_pass_untouched(
    dynamodb: Any, moto_server: aws.MotoServer, faults: Faults
) -> None:
    faults.set(error=1.0)
    streams = boto3.client("dynamodbstreams", endpoint_url=moto_server.endpoint, config=NO_RETRY)
    assert "Streams" in streams.list_streams()
    sqs = boto3.client("sqs", endpoint_url=moto_server.endpoint, config=NO_RETRY)
    sqs.list_queues()
    with urllib.request.urlopen(f"{moto_server.endpoint}/moto-api/data.json", timeout=10) as r:
        assert r.status == 200
    assert faults.injected == []


def test_off_and_outage_switch_at_runtime(
    dynamodb: Any, moto_server: aws.MotoServer, faults: Faults
) -> None:
    c = client(moto_server)
    put(c, "before")
    faults.outage(30)
    assert faults.active
    with pytest.raises(ClientError):
        put(c, "during")
    faults.off()  # ends the outage too
    assert not faults.active
    put(c, "after")
    assert exists(c, "before") and exists(c, "after") and not exists(c, "during")


def test_ambiguous_faults_apply_the_write_then_answer_500(
    dynamodb: Any, moto_server: aws.MotoServer, faults: Faults
) -> None:
    c = client(moto_server)
    faults.set(ambiguous=1.0)
    with pytest.raises(ClientError) as failed:
        put(c, "amb")
    assert failed.value.response["Error"]["Code"] == "InternalServerError"
    faults.off()
    assert exists(c, "amb")


def test_faults_carry_the_callers_trace_and_the_usage_request_id(
    dynamodb: Any, moto_server: aws.MotoServer, faults: Faults
) -> None:
    c = client(moto_server)
    tag_client(c)
    faults.set(error=1.0)
    set_trace("req-trace-1")
    try:
        with pytest.raises(ClientError):
            c.put_item(
                TableName=TABLES.usage,
                Item={k: ddb.to_ddb(v) for k, v in usage_item(1).items()},
            )
    finally:
        set_trace(None)
    with pytest.raises(ClientError):
        put(c, "untraced")
    first, second = faults.injected
    assert first.trace == "req-trace-1" and first.table == TABLES.usage
    assert first.usage_request_id.startswith("req-1-")
    assert second.trace == "" and second.usage_request_id == ""
    assert faults.by_trace() == {"req-trace-1": [first]}


def test_the_error_body_is_what_dynamodb_sends(moto_server: aws.MotoServer, faults: Faults) -> None:
    faults.set(throttle=1.0)
    request = urllib.request.Request(
        moto_server.endpoint,
        data=b'{"TableName": "x"}',
        headers={
            "X-Amz-Target": "DynamoDB_20120810.GetItem",
            "Content-Type": "application/x-amz-json-1.0",
        },
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as answered:
        urllib.request.urlopen(request, timeout=10)
    response = answered.value
    assert response.code == 400
    assert response.headers["Content-Type"] == "application/x-amz-json-1.0"
    body = json.loads(response.read())
    assert set(body) == {"__type", "message"}
    assert body["__type"].rsplit("#", 1)[1] in (
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
    )
    assert faults.injected[0].table == "x"


# -- stream handler crashes -------------------------------------------------------------------
def test_crashing_handler_before_and_after() -> None:
    calls: list[int] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(len(event["Records"]))
        return {"batchItemFailures": []}

    before = Faults(FaultPlan(crash=1.0))
    with pytest.raises(InjectedCrash):
        CrashingHandler(handler, before, "h")({"Records": [{}]}, None)
    assert calls == []
    after = Faults(FaultPlan(crash_after=1.0))
    with pytest.raises(InjectedCrash):
        CrashingHandler(handler, after, "h")({"Records": [{}, {}]}, None)
    assert calls == [2]
    assert before.counts() == {CRASH: 1} and after.counts() == {CRASH_AFTER: 1}
    assert CrashingHandler(handler, Faults(), "h")({"Records": []}, None) == {
        "batchItemFailures": []
    }


def test_pollers_count_each_event_once_through_crashes_and_dynamodb_faults(
    dynamodb: Any, moto_server: aws.MotoServer, faults: Faults
) -> None:
    """The aggregator crashes (before or after its work) on 30% of its invocations and a
    tenth of its DynamoDB calls fail; the rollups still equal the events, exactly."""
    ddb.reset_client()
    usage_handler.use_store(None)
    fast = replace(AGGREGATOR_STREAM, batch_size=10, batching_window_s=0, max_retries=50)
    faults.seed = 11
    sources = crashing_sources([StreamSource("agg", "usage", AGGREGATOR_HANDLER, fast)], faults)
    pollers = start_pollers(sources, moto=moto_server, poll_interval_s=0.05)
    try:
        writer = client(moto_server, botocore.config.Config(retries={"max_attempts": 10}))
        tenant = f"flt{uuid.uuid4().hex[:6]}"
        items = [usage_item(i, tenant=tenant, key=f"k{i % 3}") for i in range(60)]
        faults.set(crash=0.15, crash_after=0.15, throttle=0.05, error=0.05)
        for item in items:
            writer.put_item(
                TableName=TABLES.usage, Item={k: ddb.to_ddb(v) for k, v in item.items()}
            )
        assert pollers.wait_idle(60)
        counts = faults.counts()
        faults.off()
        assert counts[CRASH] + counts[CRASH_AFTER] > 0, counts
        assert pollers.dead_letters == []
        result = reconcile(tenant, "2026-11")
        assert result.events == 60 and result.drift == 0, result.mismatches[:5]
    finally:
        pollers()
        usage_handler.use_store(None)
