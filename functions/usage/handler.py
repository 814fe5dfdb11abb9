"""Lambda entry point of the usage aggregator (thin: parse the batch, apply it, answer).

Powertools' ``BatchProcessor(EventType.DynamoDBStreams)`` parses each record (the record
handler below: pure, no I/O) and hands each outcome to :class:`ParsingProcessor`'s
documented hooks; :func:`apply_parsed` then applies the parsed records *together*, one
write per touched rollup item (functions/usage/aggregator.py), and reports as failed every
record from the lowest sequence number that still has to be applied (the pure rules are in
functions/usage/batch.py). If that is the first record, the invocation fails
(:class:`BatchNotApplied`, a function error): Lambda bisects the batch, which isolates a
poison record. The answer always
carries ``state`` (empty): the mapping sets a tumbling window to receive the shard id, and
with one Lambda wants a state back.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBRecordEventName,
)

from functions.common.observability import MetricUnit, log_metrics, logger, metrics
from functions.usage import batch
from functions.usage.aggregator import (
    BatchResult,
    RollupStore,
    StaleMarks,
    StreamEvent,
    apply_batch,
    seq_key,
)
from functions.usage.batch import Parsed, sequence_number
from functions.usage.config import UsageSettings
from functions.usage.logic import UsageFact

if TYPE_CHECKING:
    from functions.notices.emitter import NoticeEmitter

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
    global _store, _settings, _notices
    _store, _settings, _notices = replacement, None, None


# -- threshold notices (issue 14): the hook that emits usage.threshold notices -------------
_notices: NoticeEmitter | None = None


def notices() -> NoticeEmitter:
    """The emitter of threshold notices (functions/notices/emitter.py), built on first use."""
    global _notices
    if _notices is None:
        from functions.notices.emitter import NoticeEmitter, TableLimits
        from functions.notices.store import NoticeStore

        tables = settings().tables
        _notices = NoticeEmitter(
            NoticeStore(tables.notices), TableLimits(tables.tenants, tables.plans)
        )
    return _notices


def use_notices(replacement: NoticeEmitter | None) -> None:
    """Swap the emitter (tests, benchmarks); None: build the DynamoDB one again on next use."""
    global _notices
    _notices = replacement


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


class ParsingProcessor(BatchProcessor):
    """Powertools' ``BatchProcessor`` for DynamoDB streams that also keeps each record's
    outcome, in order, as a :class:`~functions.usage.batch.Parsed` -- through the documented
    ``success_handler`` / ``failure_handler`` hooks. The batch is applied afterwards
    (:func:`apply_parsed`); Powertools' own partial response is not used."""

    def __init__(self) -> None:
        super().__init__(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)
        self.parsed: list[Parsed] = []

    def _next_sequence_number(self) -> str:
        return sequence_number(self.records[len(self.parsed)]) or ""

    def success_handler(self, record: Any, result: Any) -> Any:
        self.parsed.append(Parsed(self._next_sequence_number(), event=result))
        return super().success_handler(record, result)

    def failure_handler(self, record: Any, exception: Any) -> Any:
        kind, value = exception[0], exception[1]
        error = f"{getattr(kind, '__name__', kind)}: {value}"
        self.parsed.append(Parsed(self._next_sequence_number(), error=error))
        return super().failure_handler(record, exception)


def apply_parsed(shard_id: str, parsed: list[Parsed]) -> dict[str, Any]:
    """Apply the records parsed before the first unparseable one, together (one write per
    touched rollup item), and answer the records to deliver again. Raises
    :class:`BatchNotApplied` when nothing could be applied (Lambda bisects the batch)."""
    result = apply_batch(
        shard_id, batch.to_apply(parsed), store(), now_s=time.time(), stale=_stale,
        max_workers=settings().writers, observe=notices().observe,
    )  # fmt: skip
    retry_at = batch.retry_index(parsed, result.retry_from)
    unparseable = sum(1 for p in parsed if p.failed)
    _report(shard_id, result, records=len(parsed), retried=len(parsed) - retry_at,
            unparseable=unparseable)  # fmt: skip
    if retry_at == 0 and parsed:
        # Nothing applied: a function error, so that Lambda bisects the batch (which
        # isolates a poison record). One short message, not one line per record.
        first = batch.first_cause(parsed) or "a rollup write failed"
        raise BatchNotApplied(
            f"no record of the batch applied ({len(parsed)} records; first cause: {first[:300]})"
        )
    return {"batchItemFailures": batch.item_failures(parsed, retry_at)}


def _report(
    shard_id: str, result: BatchResult, *, records: int, retried: int, unparseable: int
) -> None:
    metrics.add_metric(name="RollupItemWrites", unit=MetricUnit.Count, value=result.written)
    metrics.add_metric(name="RollupReplays", unit=MetricUnit.Count, value=result.replayed)
    if result.failed or unparseable:
        metrics.add_metric(name="RollupRecordsRetried", unit=MetricUnit.Count, value=retried)
        logger.warning(
            "usage batch partly applied: records will be delivered again",
            extra={
                "shard_id": shard_id,
                "records": records,
                "retried": retried,
                "failed_items": result.failed,
                "unparseable": unparseable,
            },
        )


@log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    shard_id = event.get("shardId")
    if not shard_id:
        logger.error("usage batch without shardId: the mapping needs its tumbling window")
        raise MissingShardId("event without shardId (set the mapping's tumbling window)")
    check_source(event)
    records = event.get("Records") or []
    if not isinstance(records, list):
        raise BatchNotApplied("the event's Records is not a list")
    bad = batch.first_unreportable(records)
    if bad is not None:
        # A record Lambda cannot be told about (no sequence number to name in
        # batchItemFailures): apply nothing and fail the invocation, so that Lambda
        # bisects down to it and hands it alone to the on-failure destination.
        raise BatchNotApplied(f"record {bad} of {len(records)} has no sequence number")
    processor = ParsingProcessor()
    with processor(records, parse_record, context):
        processor.process()
    return {**apply_parsed(shard_id, processor.parsed), "state": {}}


__all__ = [
    "ParsingProcessor", "apply_parsed", "handler", "notices", "parse_record", "use_notices",
    "use_store",
]  # fmt: skip
