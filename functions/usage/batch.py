"""What a usage batch asks of Lambda, as pure functions (no I/O, no Powertools internals).

The aggregator's handler parses a batch record by record (Powertools' ``BatchProcessor``
hands each outcome to :class:`Parsed` through its documented hooks), applies the parsed
records before the first unparseable one together, then answers Lambda which records to
deliver again: every record from the lowest sequence number not yet applied -- the first
unparseable record, or the first record at or after the ``retry_from`` of a write that
failed -- so that a stream shard is never applied out of order. When that is the first
record, nothing was applied and the invocation must fail (Lambda bisects the batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from functions.usage.aggregator import StreamEvent


@dataclass(frozen=True, slots=True)
class Parsed:
    """One record of the batch after the record handler."""

    sequence_number: str  # as Lambda names the record in ``batchItemFailures``
    event: StreamEvent | None = None  # None: a record that adds nothing (or unparseable)
    error: str | None = None  # set when the record could not be parsed

    @property
    def failed(self) -> bool:
        return self.error is not None


def sequence_number(record: Any) -> str | None:
    """A raw stream record's sequence number, or None when Lambda could not be told about
    the record (no ``dynamodb.SequenceNumber`` to name in ``batchItemFailures``)."""
    if not isinstance(record, dict):
        return None
    stream = record.get("dynamodb")
    if not isinstance(stream, dict):
        return None
    seq = stream.get("SequenceNumber")
    return seq if isinstance(seq, str) and seq else None


def first_unreportable(records: Sequence[Any]) -> int | None:
    """The index of the first record without a sequence number (None: all have one)."""
    return next((i for i, r in enumerate(records) if sequence_number(r) is None), None)


def first_failed(parsed: Sequence[Parsed]) -> int:
    """The index of the first unparseable record (``len(parsed)``: none)."""
    return next((i for i, p in enumerate(parsed) if p.failed), len(parsed))


def to_apply(parsed: Sequence[Parsed]) -> list[StreamEvent]:
    """The events to apply: those parsed before the first unparseable record."""
    return [p.event for p in parsed[: first_failed(parsed)] if p.event is not None]


def retry_index(parsed: Sequence[Parsed], retry_from: str | None) -> int:
    """The index of the first record to deliver again (``len(parsed)``: none): the first
    unparseable record, or the first event at or after ``retry_from`` (the lowest sequence
    key a failed write still needs), whichever comes first."""
    at = first_failed(parsed)
    if retry_from is None:
        return at
    return next(
        (i for i, p in enumerate(parsed[:at]) if p.event is not None and p.event.seq >= retry_from),
        at,
    )


def item_failures(parsed: Sequence[Parsed], retry_at: int) -> list[dict[str, str]]:
    """``batchItemFailures``: every record from ``retry_at`` on (Lambda resumes at the
    lowest sequence number reported)."""
    return [{"itemIdentifier": p.sequence_number} for p in parsed[retry_at:]]


def first_cause(parsed: Sequence[Parsed]) -> str | None:
    """Why the first unparseable record could not be parsed (None: all parsed)."""
    return next((p.error for p in parsed if p.error is not None), None)
