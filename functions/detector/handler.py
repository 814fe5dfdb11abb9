"""Lambda entry points of the spike detector (thin: parse, hand the batch over, answer).

``handler``: the usage table's stream (functions/detector/stream.py). Powertools'
``BatchProcessor(EventType.DynamoDBStreams)`` parses each record (the record handler: pure);
:class:`DetectorProcessor` then hands the parsed batch to
:class:`~functions.detector.service.StreamDetector` at once and reports the records of every
key it could not finish as failed (partial batch response). A record that is not a usage
event is skipped, never retried: a bad record must not block detection behind it. The
answer carries ``state`` (empty): the mapping's tumbling window exists only to deliver the
shard id.

``refusals_handler``: a CloudWatch Logs subscription on the API's access logs, filtered to
the requests the gateway refused (401/403); feeds the stuffing signal.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.cloud_watch_logs_event import (
    CloudWatchLogsEvent,
)
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBRecordEventName,
)

from functions.common.observability import MetricUnit, log_metrics, logger, metrics
from functions.detector import records
from functions.detector.actions import Actions
from functions.detector.config import DetectorSettings
from functions.detector.logic import Refusal
from functions.detector.service import Record, StreamDetector
from functions.detector.store import DetectorStore
from functions.respond.events import EventPublisher

_detector: StreamDetector | None = None
_settings: DetectorSettings | None = None


def settings() -> DetectorSettings:
    global _settings
    if _settings is None:
        _settings = DetectorSettings.from_env()
    return _settings


def detector() -> StreamDetector:
    """This container's detector (built on first use)."""
    global _detector
    if _detector is None:
        s = settings()
        store = DetectorStore(plan_ttl_s=s.plan_ttl_s)
        actions = Actions(
            store=store, publisher=EventPublisher(s.event_bus), hold_minutes=s.hold_minutes
        )
        _detector = StreamDetector(store, actions)
    return _detector


def use_detector(replacement: StreamDetector | None) -> None:
    """Swap the detector (tests, benchmarks); None: build it again on next use."""
    global _detector, _settings
    _detector, _settings = replacement, None


class RetryLater(Exception):
    """The record's key could not be processed: deliver it again."""


def parse_record(record: DynamoDBRecord) -> Record | None:
    """The record handler: a usage event of an INSERT, else None (skipped)."""
    stream = record.dynamodb
    if record.event_name != DynamoDBRecordEventName.INSERT or stream is None:
        return None
    arn = record.event_source_arn
    if arn and f":table/{settings().tables.usage}/stream/" not in arn:
        logger.error("stream record of another table ignored", extra={"source": arn})
        metrics.add_metric(name="DetectorForeignRecord", unit=MetricUnit.Count, value=1)
        return None
    seq = stream.sequence_number
    event = records.usage(stream.new_image)
    if event is None or seq is None or not (seq.isascii() and seq.isdigit()):
        logger.warning("stream record skipped: not a usage event", extra={"seq": seq})
        metrics.add_metric(name="DetectorRecordSkipped", unit=MetricUnit.Count, value=1)
        return None
    return Record(ident=seq, seq=int(seq), event=event)


class DetectorProcessor(BatchProcessor):
    """``BatchProcessor`` that detects on the whole parsed batch at once."""

    def __init__(self, shard_id: str | None, target: StreamDetector) -> None:
        super().__init__(event_type=EventType.DynamoDBStreams)
        self.shard_id = shard_id
        self.target = target

    def process(self) -> list[tuple[Any, ...]]:
        outcomes = super().process()
        parsed = [o[1] for o in outcomes if o[0] == "success" and o[1] is not None]
        failed = self.target.process(self.shard_id, parsed)
        self.success_messages.clear()
        self.fail_messages.clear()
        self.exceptions.clear()
        for raw, outcome in zip(self.records, outcomes, strict=True):
            parsed_record = outcome[1] if outcome[0] == "success" else None
            if parsed_record is not None and parsed_record.ident in failed:
                self.fail_messages.append(DynamoDBRecord(raw))
                exc = RetryLater("its key could not be processed")
                self.exceptions.append((RetryLater, exc, None))
            else:
                self.success_messages.append(DynamoDBRecord(raw))
        return outcomes


@log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    shard_id = event.get("shardId") or None
    if not shard_id and event.get("Records"):
        logger.warning("usage batch without shardId: records are applied at least once")
    if not event.get("Records"):  # the tumbling window's closing call
        return {"batchItemFailures": [], "state": {}}
    metrics.add_metric(name="DetectorRecords", unit=MetricUnit.Count, value=len(event["Records"]))
    processor = DetectorProcessor(shard_id, detector())
    response = process_partial_response(
        event=event, record_handler=parse_record, processor=processor, context=context
    )
    return {**response, "state": {}}


@log_metrics
@logger.inject_lambda_context
def refusals_handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    """Refused requests from the access logs -> the stuffing signal."""
    data = CloudWatchLogsEvent(event).parse_logs_data()
    refusals: list[Refusal] = []
    for log_event in data.log_events:
        try:
            line = json.loads(log_event.message)
        except (TypeError, ValueError):
            continue
        if not isinstance(line, dict):
            continue
        fallback = int(log_event.timestamp or time.time() * 1000)
        found = records.access_log_refusal(line, fallback)
        if found is not None:
            refusals.append(found)
    metrics.add_metric(name="RefusalsSeen", unit=MetricUnit.Count, value=len(refusals))
    findings = detector().process_refusals(refusals)
    return {"refusals": len(refusals), "findings": len(findings)}


__all__ = ["handler", "parse_record", "refusals_handler", "use_detector"]
