"""Reservation markers: how a reservation orphaned by a killed Api function gets settled.

The Api reserves a request's upper bound on the gate's counters before the model call and
settles it afterwards (``functions/api/budget.py``). A function killed in between (its 15
minute timeout, an out-of-memory kill) never settles: the counters keep the upper bound and
the request has no usage event. So, after a non-zero reservation, the Api writes a small
**marker** item (:func:`put`, names in ``functions/gate/items.py``) saying what was reserved
where and which usage event to write if the request ends up without one; the settle deletes
it (:func:`delete`) after the counters. Only a request whose function died leaves a marker.

Markers are addressed by the UTC minute of the reservation and one of
``items.MARKER_BUCKETS`` buckets (the request id's CRC-32): writes spread over 16 partitions
per minute, and the sweep (``functions/sweep``) reads one minute with 16 Queries, never a
Scan. It keeps its progress on a cursor item (the last minute it finished), so a sweep that
did not run for a while catches up from there.

Settling a marker (:func:`settle_orphan`), each step idempotent:

1. the counters: nothing to do. They hold the reserved upper bound, tokens and spend (the
   worst-case cost, ``rv``), which is what the request is billed at (the real usage is
   unknown);
2. the usage event, unless the request has one already (conditional put on
   ``attribute_not_exists(request_id)``: never a duplicate): the marker's event, at the upper
   bound, ``estimated: true``, status ``error`` / ``function_timeout``, its cost the spend
   reserved when spend was reserved (so the event and the spend counters agree);
3. the marker is deleted.

A function killed after writing its event but before settling leaves the counters at the
upper bound while the event holds the real usage: an over-count (never an under-count) of
at most that request's ``max_tokens``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from functions.common import ddb
from functions.gate import items as it
from functions.gate.store import ConditionFailed, call

ORPHAN_ERROR: Final = "function_timeout"


@dataclass(frozen=True)
class Marker:
    """What the Api passes to a reservation so that it can be settled without it.

    ``event_of(prompt_tokens, completion_tokens)`` is the request's usage event billed at
    those tokens (attribution, model, plan, cost): called once the reservation's final size
    is known (a flexible ``max_tokens`` may have shrunk)."""

    request_id: str
    event_of: Callable[[int, int], dict[str, Any]] = field(compare=False)


@dataclass(frozen=True)
class Reserved:
    """Where a reservation was counted (the fields of ``functions.api.budget.Reservation``
    the marker needs)."""

    tenant_id: str
    environment: str
    shard: int
    key_id: str
    parent_key_id: str | None
    key_budgeted: bool
    amount: int
    month: str
    spend: int = 0  # micro-dollars reserved (functions/api/budget.py Reservation.spend)
    key_spend_budgeted: bool = False


def marker_item(marker: Marker, reserved: Reserved, prompt: int, completion: int,
                minute: int) -> dict[str, Any]:  # fmt: skip
    """The marker as a DynamoDB item (pure)."""
    event = {k: v for k, v in marker.event_of(prompt, completion).items() if v is not None}
    event.update(status="error", error_class=ORPHAN_ERROR, estimated=True, latency_ms=0)
    if reserved.spend and "cost_micros" in event:  # billed at what the counters hold
        event["cost_micros"] = reserved.spend
    event.pop("delivery", None)
    item: dict[str, Any] = {
        **it.marker_address(marker.request_id, minute),
        it.MARKER_TENANT: {"S": reserved.tenant_id},
        it.MARKER_ENV: {"S": reserved.environment},
        it.MARKER_SHARD: {"N": str(reserved.shard)},
        it.MARKER_KEY: {"S": reserved.key_id},
        it.MARKER_KEY_BUDGETED: {"N": "1" if reserved.key_budgeted else "0"},
        it.MARKER_AMOUNT: {"N": str(reserved.amount)},
        it.MARKER_MONTH: {"S": reserved.month},
        it.MARKER_SPEND: {"N": str(reserved.spend)},
        it.MARKER_KEY_SPEND_BUDGETED: {"N": "1" if reserved.key_spend_budgeted else "0"},
        it.MARKER_EVENT: ddb.to_ddb(event),
    }
    if reserved.parent_key_id:
        item[it.MARKER_PARENT] = {"S": reserved.parent_key_id}
    return item


def put(table: str, item: dict[str, Any]) -> None:
    """Write a marker (one PutItem; idempotent). Raises ``DependencyError``."""
    call("put_item", TableName=table, Item=item)


def delete(table: str, address: it.Address) -> None:
    """Delete a marker (one DeleteItem; idempotent). Raises ``DependencyError``."""
    call("delete_item", TableName=table, Key=address)


# -- the sweep's reads and writes ---------------------------------------------------------
def markers(table: str, minute: int) -> Iterator[dict[str, Any]]:
    """Every marker of ``minute`` (raw DynamoDB items): one Query per bucket (and page)."""
    for bucket in range(it.MARKER_BUCKETS):
        request: dict[str, Any] = {
            "TableName": table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": it.marker_partition(minute, bucket)}},
            "ConsistentRead": True,
        }
        while True:
            resp = call("query", **request)
            yield from resp.get("Items", [])
            if not resp.get("LastEvaluatedKey"):
                break
            request["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def cursor(table: str) -> int | None:
    """The last minute the sweep finished (None: it never ran)."""
    resp = call("get_item", TableName=table, Key=it.CURSOR_ADDRESS, ConsistentRead=True)
    value = (resp.get("Item") or {}).get(it.CURSOR_MINUTE)
    return None if value is None else int(value["N"])


def advance(table: str, minute: int) -> None:
    """Move the cursor forward to ``minute`` (never back)."""
    with contextlib.suppress(ConditionFailed):  # another run went further
        call(
            "update_item",
            TableName=table,
            Key=it.CURSOR_ADDRESS,
            UpdateExpression="SET #m = :m",
            ConditionExpression="attribute_not_exists(#m) OR #m < :m",
            ExpressionAttributeNames={"#m": it.CURSOR_MINUTE},
            ExpressionAttributeValues={":m": {"N": str(minute)}},
        )


def settle_orphan(gate_table: str, usage_table: str, raw: Mapping[str, Any]) -> bool:
    """Settle one orphaned reservation at its upper bound (see the module docstring); True
    if this call wrote its usage event (False: the request had one)."""
    event = dict(raw[it.MARKER_EVENT]["M"])
    event["delivery"] = {"S": f"sweep#{raw['sk']['S']}"}
    try:
        call(
            "put_item",
            TableName=usage_table,
            Item=event,
            ConditionExpression="attribute_not_exists(request_id)",
        )
        written = True
    except ConditionFailed:
        written = False
    delete(gate_table, {"pk": raw["pk"], "sk": raw["sk"]})
    return written


def view(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A marker as plain values (for logs and tests)."""
    return ddb.item_from_ddb(dict(raw))
