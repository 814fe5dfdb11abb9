"""Helpers for the usage pipeline's tests (a plain module, no fixtures): usage event items,
Lambda-shaped stream events, a Lambda context, and an in-memory rollup store with the
conditional-update semantics of DynamoDB (and faults on demand)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from functions.common import ddb
from functions.usage.aggregator import (
    MARK_PREFIX,
    Applied,
    Behind,
    StoreUnavailable,
    mark_seq,
)
from functions.usage.logic import MEASURES, Counters, RollupKey, UsageFact

SHARD = "shardId-00000001700000000000-0a1b2c3d"
STREAM_ARN = (
    "arn:aws:dynamodb:us-east-1:123456789012:table/tollgate-usage/stream/2026-11-01T00:00:00.000"
)
T0_MS = 1_793_491_200_000  # 2026-11-01T00:00:00Z


def usage_item(
    n: int,
    *,
    tenant: str = "acme",
    key: str = "key_a",
    principal: str = "svc",
    env: str = "live",
    model: str = "tollgate-echo",
    plan: str = "starter",
    ts_ms: int | None = None,
    prompt: int = 10,
    completion: int = 5,
    cost: int = 7,
    status: str = "ok",
) -> dict[str, Any]:
    """A usage event as the managed API writes it (plain values)."""
    return {
        "request_id": f"req-{n}-{uuid.uuid4().hex[:6]}",
        "ts": T0_MS + n * 60_000 if ts_ms is None else ts_ms,
        "tenant_id": tenant,
        "key_id": key,
        "principal": principal,
        "environment": env,
        "operation": "chat.completions",
        "model": model,
        "plan": plan,
        "prompt_tokens": prompt if status == "ok" else 0,
        "completion_tokens": completion if status == "ok" else 0,
        "cost_micros": cost if status == "ok" else 0,
        "status": status,
        "error_class": None if status == "ok" else "model_error",
        "latency_ms": 12,
        "source_ip": "203.0.113.9",
        "user_agent": "test",
    }


def stream_record(
    item: Mapping[str, Any], seq: int, *, event_name: str = "INSERT", at_s: int | None = None
) -> dict[str, Any]:
    """One Lambda DynamoDB stream record for a usage event item (created now by default:
    the record's time, not the event's, decides when its mark may be pruned)."""
    image = {k: ddb.to_ddb(v) for k, v in item.items() if v is not None}
    return {
        "eventID": uuid.uuid4().hex,
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "eventSourceARN": STREAM_ARN,
        "dynamodb": {
            "ApproximateCreationDateTime": int(time.time()) if at_s is None else at_s,
            "Keys": {"request_id": image["request_id"]},
            "NewImage": image,
            "SequenceNumber": str(seq),
            "SizeBytes": 300,
            "StreamViewType": "NEW_IMAGE",
        },
    }


def lambda_event(records: Sequence[dict[str, Any]], shard: str | None = SHARD) -> dict[str, Any]:
    event: dict[str, Any] = {"Records": list(records)}
    if shard is not None:
        event.update(
            shardId=shard,
            eventSourceARN=STREAM_ARN,
            window={"start": "2026-11-01T00:00:00Z", "end": "2026-11-01T00:15:00Z"},
            state={},
            isFinalInvokeForWindow=False,
            isWindowTerminatedEarly=False,
        )
    return event


class Context:
    function_name = "usage-aggregator"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:usage-aggregator"
    aws_request_id = "test-request"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def failed_seqs(response: Mapping[str, Any] | None) -> list[str]:
    return [f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])]


@dataclass
class MemoryRollupStore:
    """The rollups table in memory, with DynamoDB's conditional-update semantics.

    ``faults(key) -> bool`` makes a write fail (``StoreUnavailable``) before it changes
    anything; ``lost_replies(key) -> bool`` makes a write succeed and then fail (the
    caller never hears back: a timeout after DynamoDB applied it).
    """

    items: dict[RollupKey, dict[str, Any]] = field(default_factory=dict)
    faults: Callable[[RollupKey], bool] = lambda key: False
    lost_replies: Callable[[RollupKey], bool] = lambda key: False
    requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def apply(
        self,
        key: RollupKey,
        *,
        mark_attr: str,
        first: str,
        mark: str,
        counters: Counters,
        remove: Sequence[str] = (),
    ) -> Applied | Behind:
        with self._lock:
            self.requests += 1
            if self.faults(key):
                raise StoreUnavailable("injected fault")
            item = self.items.get(key, {})
            current = item.get(mark_attr)
            if current is not None and not current < first:
                return Behind(mark=current)
            new = dict(item)
            for name in MEASURES:
                new[name] = new.get(name, 0) + getattr(counters, name)
            new[mark_attr] = mark
            for attr in remove:
                new.pop(attr, None)
            self.items[key] = new
            if self.lost_replies(key):
                raise StoreUnavailable("injected lost reply")
            return Applied(marks={k: v for k, v in new.items() if k.startswith(MARK_PREFIX)})

    def counters(self) -> dict[RollupKey, Counters]:
        return {k: Counters.from_item(v) for k, v in self.items.items()}

    def marks(self, key: RollupKey) -> dict[str, str]:
        return {k: mark_seq(v) for k, v in self.items[key].items() if k.startswith(MARK_PREFIX)}


def facts(items: Iterable[Mapping[str, Any]]) -> list[UsageFact]:
    return [UsageFact.from_item(i) for i in items]


def nonzero(rollups: Mapping[RollupKey, Counters]) -> dict[RollupKey, dict[str, int]]:
    """Rollups as plain dicts, without items that count nothing (for comparisons)."""
    return {k: c.as_dict() for k, c in rollups.items() if c}
