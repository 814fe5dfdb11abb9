"""The usage aggregator's answer to Lambda (functions/usage/batch.py), pure: which records
are applied, which are delivered again, and when the invocation must fail instead."""

from __future__ import annotations

from typing import Any

import pytest

from functions.usage.aggregator import StreamEvent, seq_key
from functions.usage.batch import (
    Parsed,
    first_cause,
    first_unreportable,
    item_failures,
    retry_index,
    sequence_number,
    to_apply,
)


def event(seq: int) -> StreamEvent:
    return StreamEvent(seq=seq_key(seq), at_s=0, fact=None)  # type: ignore[arg-type]


def ok(seq: int) -> Parsed:
    return Parsed(str(seq), event=event(seq))


def skipped(seq: int) -> Parsed:
    return Parsed(str(seq))  # a MODIFY or REMOVE: adds nothing


def bad(seq: int) -> Parsed:
    return Parsed(str(seq), error=f"MalformedEvent: record {seq}")


def test_all_parsed_and_applied_nothing_is_delivered_again() -> None:
    parsed = [ok(1), skipped(2), ok(3)]
    assert [e.seq for e in to_apply(parsed)] == [seq_key(1), seq_key(3)]
    assert retry_index(parsed, None) == 3
    assert item_failures(parsed, 3) == []
    assert first_cause(parsed) is None


def test_an_unparseable_record_stops_the_batch_there() -> None:
    parsed = [ok(1), bad(2), ok(3)]
    assert [e.seq for e in to_apply(parsed)] == [seq_key(1)]  # never past it: order holds
    assert retry_index(parsed, None) == 1
    assert item_failures(parsed, 1) == [{"itemIdentifier": "2"}, {"itemIdentifier": "3"}]
    assert first_cause(parsed) == "MalformedEvent: record 2"


@pytest.mark.parametrize(
    ("retry_from", "expected"),
    [(seq_key(3), 2), (seq_key(2), 1), (seq_key(1), 0), (seq_key(9), 4), (None, 4)],
)
def test_a_failed_write_retries_from_its_lowest_sequence_number(
    retry_from: str | None, expected: int
) -> None:
    parsed = [ok(1), ok(2), ok(3), skipped(4)]
    assert retry_index(parsed, retry_from) == expected


def test_a_failed_write_after_an_unparseable_record_retries_from_the_earlier() -> None:
    parsed = [ok(1), bad(2), ok(3)]
    assert retry_index(parsed, seq_key(3)) == 1
    assert retry_index([ok(1), ok(2), bad(3)], seq_key(2)) == 1


def test_nothing_applied_is_index_zero() -> None:
    assert retry_index([bad(1), ok(2)], None) == 0
    assert retry_index([ok(1), ok(2)], seq_key(1)) == 0


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"dynamodb": {"SequenceNumber": "42"}}, "42"),
        ({"dynamodb": {"SequenceNumber": ""}}, None),
        ({"dynamodb": {"SequenceNumber": 42}}, None),
        ({"dynamodb": None}, None),
        ({}, None),
        ("not a record", None),
    ],
)
def test_sequence_numbers_lambda_can_be_told_about(record: Any, expected: str | None) -> None:
    assert sequence_number(record) == expected


def test_the_first_record_lambda_cannot_be_told_about() -> None:
    good = {"dynamodb": {"SequenceNumber": "1"}}
    assert first_unreportable([good, good]) is None
    assert first_unreportable([good, {"dynamodb": {}}, good]) == 1
