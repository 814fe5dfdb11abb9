"""The managed API when DynamoDB fails the way it documents: an ``InternalServerError`` after
which "the operation may or may not have succeeded" (tollgate/local/faults.py, ``ambiguous``:
moto applies the write, then the request is answered 500, and botocore retries it).

What must hold: the token counter never counts *less* than the tokens of the usage events
(counting more only refuses early; counting less lets a tenant pass its limit)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.api_events import (
    chat,
    events_table,
    fresh_api,
    make_key,
    make_tenant,
    tenant_item,
    who_for,
)
from tollgate.local import aws
from tollgate.local.faults import AMBIGUOUS, ERROR, Faults

LIMIT = 100_000


@pytest.fixture
def faults(moto_server: aws.MotoServer) -> Iterator[Faults]:
    f = moto_server.faults
    f.off()
    f.injected.clear()
    yield f
    f.off()
    f.injected.clear()


@pytest.fixture
def caller(dynamodb: Any) -> Any:
    fresh_api()
    make_tenant("acme", tokens_per_month=LIMIT)
    return who_for("acme", make_key("acme"))


def used(dynamodb: Any) -> tuple[int, int]:
    """(the tenant's token counter, the tokens its usage events record)."""
    events = events_table(dynamodb)
    tokens = sum(int(e["prompt_tokens"]) + int(e["completion_tokens"]) for e in events)
    return int(tenant_item(dynamodb)["mtok"]), tokens


def test_a_failed_usage_put_is_logged_and_its_tokens_stay_counted(
    dynamodb: Any, faults: Faults, caller: Any
) -> None:
    """Every attempt fails (no ambiguity): the client gets its answer, the event is a dead
    letter in the log, and the counter keeps the tokens actually used."""
    faults.next_request(ERROR, operation="PutItem", table="tollgate-usage", times=10)
    reply = chat(caller, "four words right here")
    assert reply.status == 200
    counter, events = used(dynamodb)
    assert events == 0
    assert counter == reply.json["usage"]["total_tokens"]


def test_an_ambiguous_reserve_over_counts_and_never_under(
    dynamodb: Any, faults: Faults, caller: Any
) -> None:
    faults.next_request(AMBIGUOUS, operation="UpdateItem", table="tollgate-gate")
    reply = chat(caller, "four words right here")
    assert reply.status == 200
    counter, events = used(dynamodb)
    assert events == reply.json["usage"]["total_tokens"] > 0
    assert counter > events  # the retried reservation stays counted: refuses early, safely


def test_an_ambiguous_usage_put_keeps_the_tokens_counted(
    dynamodb: Any, faults: Faults, caller: Any
) -> None:
    faults.next_request(AMBIGUOUS, operation="PutItem", table="tollgate-usage")
    reply = chat(caller, "four words right here")
    assert reply.status == 200
    counter, events = used(dynamodb)
    assert events == reply.json["usage"]["total_tokens"] > 0
    assert counter >= events


def test_an_ambiguous_settle_never_under_counts(dynamodb: Any, faults: Faults, caller: Any) -> None:
    # reserve (UpdateItem #1) passes, settle (UpdateItem #2) is applied then answered 500
    faults.next_request(AMBIGUOUS, operation="UpdateItem", table="tollgate-tenants", after=1)
    reply = chat(caller, "four words right here")
    assert reply.status == 200
    counter, events = used(dynamodb)
    assert events == reply.json["usage"]["total_tokens"] > 0
    assert counter >= events
