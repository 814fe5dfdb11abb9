"""Lambda entry point of the usage aggregator (thin: parse the batch, apply it, answer).

Powertools' ``BatchProcessor(EventType.DynamoDBStreams)`` parses each record (the record
handler below: pure, no I/O); :class:`RollupProcessor` then applies the parsed records
*together*, one write per touched rollup item (functions/usage/aggregator.py), and reports
as failed every record from the lowest sequence number that still has to be applied. If
that is the first record, the invocation fails (:class:`BatchNotApplied`, a function
error): Lambda bisects the batch, which isolates a poison record. The answer always
carries ``state`` (empty): the mapping sets a tumbling window to receive the shard id, and
with one Lambda wants a state back.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBRecordEventName,
)

from functions.common.observability import MetricUnit, log_metrics, logger, metrics
from functions.usage.aggregator import (
    BatchResult,
    RollupStore,
    StaleMarks,
    StreamEvent,
    apply_batch,
    seq_key,
)
from functions.usage.config import UsageSettings
from functions.usage.logic import UsageFact

_settings: UsageSettings | None = None
_store: RollupStore | None = None
_stale = StaleMarks()


def settings() -> UsageSettings:
    global _settings
    if _settings is None:
        _settings = UsageSettings.from_env()
    return _settings


def store() -> RollupStore:
    global _store
    if _store is None:
        from functions.usage.store import DynamoRollupStore

        _store = DynamoRollupStore(settings().tables.rollups)
    return _store


def use_store(replacement: RollupStore | None) -> None:
    """Swap the store (tests, benchmarks); None: build the DynamoDB one again on next use."""
    global _store, _settings
    _store, _settings = replacement, None


class MissingShardId(Exception):
    """The event has no ``shardId``: the mapping lacks its tumbling window (see stream.py)."""


class WrongStream(Exception):
    """The event comes from another table's stream than the usage table's (miswired)."""


def check_source(event: dict[str, Any]) -> None:
    """Refuse events from a stream other than the usage table's: its records would be
    unparseable (or worse, parseable). The ARN reads ``...:table/<name>/stream/<label>``."""
    records = event.get("Records") or [{}]
    arn = event.get("eventSourceARN") or records[0].get("eventSourceARN")
    if not arn:
        return
    table = str(arn).split(":table/", 1)[-1].split("/stream/", 1)[0]
    if table != settings().tables.usage:
        raise WrongStream(f"stream of table {table!r}, expected {settings().tables.usage!r}")


class BatchNotApplied(BatchProcessingError):
    """No record of the batch could be applied: the invocation fails (Lambda bisects)."""


class RetryFromHere(Exception):
    """This record (or one before it in the batch) has not been applied: deliver it again."""


def parse_record(record: DynamoDBRecord) -> StreamEvent | None:
    """The record handler: a usage event, or None for records that add nothing."""
    if record.event_name != DynamoDBRecordEventName.INSERT:
        return None  # the mapping filters these out; never count a MODIFY/REMOVE
    stream = record.dynamodb
    if stream is None or stream.sequence_number is None:
        raise ValueError("stream record without a sequence number")
    at = stream.approximate_creation_date_time
    return StreamEvent(
        seq=seq_key(stream.sequence_number),
        at_s=int(time.time()) if at is None else int(at),
        fact=UsageFact.from_item(stream.new_image),
    )


class RollupProcessor(BatchProcessor):
    """``BatchProcessor`` that applies a batch's parsed records once, at the end.

    Records are parsed one by one (Powertools calls the record handler); the records before
    the first unparseable one are applied together; the failures reported are every record
    from the lowest sequence number still to be applied.
    """

    def __init__(self, shard_id: str, rollups: RollupStore, *, writers: int = 1) -> None:
        super().__init__(event_type=EventType.DynamoDBStreams)
        self.shard_id = shard_id
        self.rollups = rollups
        self.writers = writers
        self.result: BatchResult | None = None

    def process(self) -> list[tuple[Any, ...]]:
        unreportable = [
            i
            for i, record in enumerate(self.records)
            if not isinstance(record, dict)
            or not isinstance(record.get("dynamodb"), dict)
            or not record["dynamodb"].get("SequenceNumber")
        ]
        if unreportable:
            # A record Lambda cannot be told about (no sequence number to name in
            # batchItemFailures): apply nothing and fail the invocation, so that Lambda
            # bisects down to it and hands it alone to the on-failure destination.
            raise BatchNotApplied(
                f"record {unreportable[0]} of {len(self.records)} has no sequence number"
            )
        outcomes = super().process()
        self.success_messages.clear()
        self.fail_messages.clear()
        self.exceptions.clear()

        first_bad = next((i for i, o in enumerate(outcomes) if o[0] == "fail"), len(outcomes))
        events = [o[1] for o in outcomes[:first_bad] if o[1] is not None]
        result = apply_batch(
            self.shard_id, events, self.rollups, now_s=time.time(), stale=_stale,
            max_workers=self.writers,
        )  # fmt: skip
        self.result = result
        retry_at = first_bad
        if result.retry_from is not None:
            retry_at = min(
                retry_at,
                next(
                    (
                        i
                        for i, o in enumerate(outcomes)
                        if o[1] is not None and o[1].seq >= result.retry_from
                    ),
                    retry_at,
                ),
            )
        parse_failures = [o[1] for o in outcomes if o[0] == "fail"]
        self._report(result, retried=len(outcomes) - retry_at, parse_failures=len(parse_failures))
        if retry_at == 0 and outcomes:
            # Nothing applied: a function error, so that Lambda bisects the batch (which
            # isolates a poison record). One short message, not one line per record.
            first = parse_failures[0] if parse_failures else "a rollup write failed"
            raise BatchNotApplied(
                f"no record of the batch applied ({len(outcomes)} records; first cause: "
                f"{str(first)[:300]})"
            )
        failure = RetryFromHere("not applied yet: delivered again from the first such record")
        for i, (record, outcome) in enumerate(zip(self.records, outcomes, strict=True)):
            if i < retry_at:
                self.success_messages.append(DynamoDBRecord(record))
                continue
            self.fail_messages.append(DynamoDBRecord(record))
            if outcome[0] == "fail":
                self.exceptions.append(_exc_info(outcome[1]))
            else:
                self.exceptions.append((RetryFromHere, failure, None))
        return outcomes

    def _report(self, result: BatchResult, *, retried: int, parse_failures: int) -> None:
        metrics.add_metric(name="RollupItemWrites", unit=MetricUnit.Count, value=result.written)
        metrics.add_metric(name="RollupReplays", unit=MetricUnit.Count, value=result.replayed)
        if result.failed or parse_failures:
            metrics.add_metric(name="RollupRecordsRetried", unit=MetricUnit.Count, value=retried)
            logger.warning(
                "usage batch partly applied: records will be delivered again",
                extra={
                    "shard_id": self.shard_id,
                    "records": len(self.records),
                    "retried": retried,
                    "failed_items": result.failed,
                    "unparseable": parse_failures,
                },
            )


def _exc_info(message: str) -> tuple[type[BaseException], BaseException, Any]:
    exc = RetryFromHere(f"unparseable usage record: {message}")
    return (RetryFromHere, exc, None)


@log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    shard_id = event.get("shardId")
    if not shard_id:
        logger.error("usage batch without shardId: the mapping needs its tumbling window")
        raise MissingShardId("event without shardId (set the mapping's tumbling window)")
    check_source(event)
    processor = RollupProcessor(shard_id, store(), writers=settings().writers)
    response = process_partial_response(
        event=event, record_handler=parse_record, processor=processor, context=context
    )
    return {**response, "state": {}}


__all__ = ["RollupProcessor", "handler", "parse_record", "use_store"]
