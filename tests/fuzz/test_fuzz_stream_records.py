"""Malformed DynamoDB stream records fed to the stream handlers, mixed with good ones.

Usage aggregator (in-memory rollup store with DynamoDB's conditional semantics): it either
answers with partial batch failures or, when nothing of the batch could be applied, fails
the invocation (so that Lambda bisects and isolates the poison record). Either way the
rollups hold exactly the valid events before the first reported failure, once; delivering
the same batch again changes nothing.

Spike detector: a record that is not a usage event is skipped (a log line), never fails the
batch and never blocks the records around it; each valid record reaches detection once; on
moto, delivering the same batch again leaves the detector's state as it was."""

from __future__ import annotations

import contextlib
import copy
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from hypothesis import given
from hypothesis import strategies as st

from functions.common import ddb
from functions.detector import handler as detector_handler
from functions.usage import aggregator
from functions.usage import handler as usage_handler
from functions.usage.logic import MalformedEvent, UsageFact, aggregate
from tests.fuzz.support import count, fuzz, snapshot
from tests.usage_support import (
    Context,
    MemoryRollupStore,
    failed_seqs,
    lambda_event,
    nonzero,
    stream_record,
    usage_item,
)

SEQ0 = 5_000_000_000_000_000_000_001

attribute_values = st.one_of(
    st.fixed_dictionaries({"S": st.text(max_size=20)}),
    st.fixed_dictionaries(
        {
            "N": st.one_of(
                st.integers(-(10**20), 10**20).map(str),
                st.sampled_from(["1e400", "NaN", "-0", "1.5", "", "x"]),
            )
        }
    ),
    st.fixed_dictionaries({"BOOL": st.booleans()}),
    st.just({"NULL": True}),
    st.fixed_dictionaries(
        {"L": st.lists(st.fixed_dictionaries({"S": st.text(max_size=3)}), max_size=2)}
    ),
    st.fixed_dictionaries({"M": st.just({})}),
    st.dictionaries(
        st.sampled_from(["S", "N", "B", "SS", "Q"]),
        st.one_of(st.none(), st.integers(), st.text(max_size=3)),
        max_size=2,
    ),
)
FIELDS = [
    "request_id",
    "ts",
    "tenant_id",
    "key_id",
    "principal",
    "environment",
    "operation",
    "model",
    "plan",
    "prompt_tokens",
    "completion_tokens",
    "cost_micros",
    "status",
    "source_ip",
]


@st.composite
def records(draw: st.DrawFn, *, without_stream: bool = True) -> list[dict[str, Any]]:
    """A batch: good usage records and records broken in one or several ways
    (``without_stream``: including records with no ``dynamodb`` part at all)."""
    out = []
    for i in range(draw(st.integers(1, 8))):
        item = usage_item(
            i,
            tenant=draw(st.sampled_from(["acme", "globex"])),
            key=draw(st.sampled_from(["key_a", "key_b"])),
            env=draw(st.sampled_from(["live", "test"])),
            prompt=draw(st.integers(0, 50)),
            completion=draw(st.integers(0, 50)),
        )
        record = stream_record(item, SEQ0 + i)
        how = draw(st.sampled_from(["good", "good", "field", "fields", "event", "shape", "seq"]))
        image = record["dynamodb"]["NewImage"]
        if how == "field":
            name = draw(st.sampled_from(FIELDS))
            if draw(st.booleans()):
                image.pop(name, None)
            else:
                image[name] = draw(attribute_values)
        elif how == "fields":
            for name in draw(st.lists(st.sampled_from(FIELDS), max_size=4)):
                image[name] = draw(attribute_values)
        elif how == "event":
            record["eventName"] = draw(st.sampled_from(["MODIFY", "REMOVE", "", "insert"]))
        elif how == "shape":
            parts = ["NewImage", "dynamodb", "Keys"] if without_stream else ["NewImage", "Keys"]
            part = draw(st.sampled_from(parts))
            if part == "dynamodb":
                record.pop("dynamodb")
            else:
                record["dynamodb"].pop(part, None)
        elif how == "seq":
            record["dynamodb"]["SequenceNumber"] = draw(
                st.sampled_from(["", "abc", "-1", "\u00b2", "\u0663"])
            )
        out.append(record)
    return out


def _image(record: dict[str, Any]) -> dict[str, Any] | None:
    """The record's new image as the handlers read it (Powertools: numbers are Decimals)."""
    stream = record.get("dynamodb")
    if record.get("eventName") != "INSERT" or not stream or "NewImage" not in stream:
        return None
    try:
        image = DynamoDBRecord(record).dynamodb
        return dict(image.new_image) if image is not None else None
    except Exception:  # an attribute value the deserializer cannot read
        return None


def _fact(record: dict[str, Any]) -> UsageFact | None:
    """The usage event a record carries, or None if it carries none."""
    image = _image(record)
    try:
        return None if image is None else UsageFact.from_item(image)
    except MalformedEvent:
        return None


@pytest.fixture
def rollups(monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryRollupStore]:
    monkeypatch.setattr(aggregator, "WRITE_RETRY_DELAY_S", 0.0)
    memory = MemoryRollupStore()
    usage_handler.use_store(memory)
    yield memory
    usage_handler.use_store(None)


@fuzz(120)
@given(batch=records())
def test_usage_aggregator(batch: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    count("stream records: aggregator")
    monkeypatch.setattr(aggregator, "WRITE_RETRY_DELAY_S", 0.0)
    memory = MemoryRollupStore()
    usage_handler.use_store(memory)
    try:
        event = lambda_event(batch)
        seqs = [r.get("dynamodb", {}).get("SequenceNumber") for r in batch]
        try:
            response = usage_handler.handler(copy.deepcopy(event), Context())
            failed = failed_seqs(response)
            assert "state" in response
            assert all(f in seqs for f in failed), "failures name records of the batch"
            done = seqs.index(failed[0]) if failed else len(batch)
            assert failed == [s for s in seqs[done:]], "every record from the first failure"
        except BatchProcessingError:
            done = 0  # nothing applied: the invocation fails, Lambda bisects
        applied = [f for f in map(_fact, batch[:done]) if f is not None]
        assert nonzero(memory.counters()) == nonzero(aggregate(applied))
        before = nonzero(memory.counters())
        with contextlib.suppress(BatchProcessingError):
            usage_handler.handler(copy.deepcopy(event), Context())  # delivered again
        assert nonzero(memory.counters()) == before, "a replay counts nothing twice"
    finally:
        usage_handler.use_store(None)


class Spy:
    """Stands in for :class:`~functions.detector.service.StreamDetector`."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def process(self, shard_id: str | None, parsed: Any) -> set[str]:
        self.seen += [r.ident for r in parsed]
        return set()


@fuzz(120)
@given(batch=records())
def test_spike_detector_parsing(batch: list[dict[str, Any]]) -> None:
    count("stream records: detector")
    from functions.detector import records as detector_records

    spy = Spy()
    detector_handler.use_detector(spy)  # type: ignore[arg-type]
    try:
        response = detector_handler.handler(lambda_event(batch), Context())
    finally:
        detector_handler.use_detector(None)
    assert response == {"batchItemFailures": [], "state": {}}, "a bad record never fails a batch"
    wanted = []
    for r in batch:
        seq = (r.get("dynamodb") or {}).get("SequenceNumber")
        image = _image(r)
        event = None if image is None else detector_records.usage(image)
        if event is not None and isinstance(seq, str) and seq.isascii() and seq.isdigit():
            wanted.append(seq)
    assert spy.seen == wanted, "each usage event reaches detection once, the rest is skipped"


@fuzz(15, deep_max=60)
@given(batch=records())
def test_spike_detector_replays_change_nothing(dynamodb: Any, batch: list[dict[str, Any]]) -> None:
    """On moto, with plans that act (spike_policy suspend): the second delivery of a batch
    leaves the detector's state and every other table as the first left them."""
    count("stream records: detector replay")
    from functions.common.models import Plan

    for name in ("starter",):
        Plan(name=name, created_at="2026-01-01T00:00:00Z", spike_policy="suspend").save()
    for r in batch:  # fresh identities: examples share the tables
        image = (r.get("dynamodb") or {}).get("NewImage") or {}
        if isinstance(image.get("key_id"), dict) and "S" in image["key_id"]:
            image["key_id"] = {"S": f"{image['key_id']['S']}-{uuid.uuid4().hex[:6]}"}
    ddb.reset_client()
    detector_handler.use_detector(None)
    event = lambda_event(batch)
    first = detector_handler.handler(copy.deepcopy(event), Context())
    assert first["batchItemFailures"] == [] or all(
        f["itemIdentifier"] in [(r.get("dynamodb") or {}).get("SequenceNumber") for r in batch]
        for f in first["batchItemFailures"]
    )
    if first["batchItemFailures"]:
        return  # a record to retry: its replay is the aggregator's kind of test
    after_first = snapshot(dynamodb)
    again = detector_handler.handler(copy.deepcopy(event), Context())
    assert again["batchItemFailures"] == []
    assert snapshot(dynamodb) == after_first, "a replay changes nothing"


def test_a_record_without_its_stream_part_fails_the_batch_typed(rollups: MemoryRollupStore) -> None:
    count("stream records: fixed bugs")
    good = stream_record(usage_item(1), SEQ0)
    broken = stream_record(usage_item(2), SEQ0 + 1)
    broken.pop("dynamodb")
    try:
        response = usage_handler.handler(lambda_event([good, broken]), Context())
    except BatchProcessingError:
        return  # a function error: Lambda bisects and isolates the record
    assert failed_seqs(response) == [str(SEQ0 + 1)] or failed_seqs(response) == []
