"""Issue 5's figures: rollup writes per usage event, aggregation throughput, and the drift
after a chaos run (random retries, duplicate deliveries, partial failures) -- all with the
real aggregator handler against moto's server (``python -m bench usage``)."""

from __future__ import annotations

import random
import threading
import time
import uuid
from typing import Any

from bench.common import Section, count_calls

T0_MS = 1_793_491_200_000  # 2026-11-01T00:00:00Z
SHARD = "shardId-00000001700000000000-bench000"
ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/{table}/stream/2026-11-01T00:00:00.000"


class _Ctx:
    function_name = "usage-aggregator"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:usage-aggregator"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 120_000


def _events(n: int, tenant: str, keys: int = 5, spread_ms: int = 3_000_000) -> list[dict]:
    """``n`` usage events of one tenant from ``keys`` keys (each key its own principal,
    two models) inside one hour."""
    rnd = random.Random(n)
    out = []
    for i in range(n):
        k = rnd.randrange(keys)
        prompt, completion = rnd.randrange(1, 800), rnd.randrange(1, 400)
        out.append(
            {
                "request_id": f"bench-{uuid.uuid4().hex}",
                "ts": T0_MS + rnd.randrange(spread_ms),
                "tenant_id": tenant,
                "key_id": f"key_{k}",
                "principal": f"agent-{k}",
                "environment": "live",
                "operation": "chat.completions",
                "model": ("tollgate-echo", "bedrock:haiku")[i % 2],
                "plan": "starter",
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "cost_micros": (prompt * 500 + completion * 1500 + 500) // 1000,
                "status": "ok",
                "latency_ms": 10,
                "source_ip": "203.0.113.1",
                "user_agent": "bench",
            }
        )
    return out


def _records(items: list[dict], first_seq: int, table: str) -> list[dict[str, Any]]:
    from functions.common import ddb

    now = int(time.time())
    return [
        {
            "eventID": uuid.uuid4().hex,
            "eventName": "INSERT",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "eventSourceARN": ARN.format(table=table),
            "dynamodb": {
                "ApproximateCreationDateTime": now,
                "Keys": {"request_id": {"S": item["request_id"]}},
                "NewImage": {k: ddb.to_ddb(v) for k, v in item.items()},
                "SequenceNumber": str(first_seq + i),
                "SizeBytes": 400,
                "StreamViewType": "NEW_IMAGE",
            },
        }
        for i, item in enumerate(items)
    ]


def _event(records: list[dict[str, Any]], shard: str, table: str) -> dict[str, Any]:
    return {
        "Records": records,
        "shardId": shard,
        "eventSourceARN": ARN.format(table=table),
        "window": {"start": "2026-11-01T00:00:00Z", "end": "2026-11-01T00:15:00Z"},
        "state": {},
        "isFinalInvokeForWindow": False,
        "isWindowTerminatedEarly": False,
    }


def _put_events(items: list[dict]) -> None:
    from functions.common import ddb
    from functions.common.config import TableNames

    client, table = ddb.client(), TableNames.from_env().usage
    for item in items:
        client.put_item(TableName=table, Item={k: ddb.to_ddb(v) for k, v in item.items()})


class _Chaos:
    """A rollup store with outages and lost replies.

    Per delivery, each item is down with probability ``outage`` (every attempt refused, so
    the batch fails partway and its records are redelivered); any write may lose its reply
    after applying with probability ``lost`` (the writer retries and its own mark refuses it).
    """

    def __init__(self, inner: Any, rnd: random.Random, outage: float, lost: float) -> None:
        self.inner, self.rnd, self.outage, self.lost_rate = inner, rnd, outage, lost
        self.refused = self.lost = 0
        self.delivery = 0
        self._lock = threading.Lock()

    def apply(self, key: Any, **kwargs: Any) -> Any:
        from functions.usage.aggregator import StoreUnavailable

        down = random.Random(f"{key.tenant_id}|{key.sk}|{self.delivery}").random() < self.outage
        with self._lock:
            roll = self.rnd.random()
        if down:
            self.refused += 1
            raise StoreUnavailable("chaos: item down")
        result = self.inner.apply(key, **kwargs)
        if roll < self.lost_rate:
            self.lost += 1
            raise StoreUnavailable("chaos: reply lost after the write")
        return result


def _chaos_run(sec: Section, table: str) -> None:
    """Lambda's delivery contract per shard, with faults: deliveries start at the
    checkpoint or (replays, duplicates) before it; the checkpoint moves to the lowest
    reported failure; a function error moves nothing and halves the next batch."""
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    from functions.common.config import TableNames
    from functions.usage import handler
    from functions.usage.reports import reconcile
    from functions.usage.store import DynamoRollupStore

    rnd = random.Random(20261101)
    tenants = ["chaos-a", "chaos-b", "chaos-c"]
    items = [i for t in tenants for i in _events(400, t, keys=5, spread_ms=2 * 3_600_000)]
    rnd.shuffle(items)
    _put_events(items)
    shards: dict[str, list[dict[str, Any]]] = {"shard-1": [], "shard-2": []}
    for item in items:
        shards[rnd.choice(list(shards))].append(item)
    records = {s: _records(its, 10**21 + 10**6 * n, table) for n, (s, its) in
               enumerate(shards.items())}  # fmt: skip
    chaos = _Chaos(DynamoRollupStore(TableNames.from_env().rollups), rnd, outage=0.004, lost=0.03)
    handler.use_store(chaos)
    checkpoint = dict.fromkeys(shards, 0)
    limit = dict.fromkeys(shards, 300)
    deliveries = replays = errors = partial = 0
    try:
        while any(checkpoint[s] < len(records[s]) for s in shards):
            if deliveries == 400:  # bounded: drain the rest without outages
                chaos.outage = 0.0
            chaos.delivery = deliveries
            shard = rnd.choice([s for s in shards if checkpoint[s] < len(records[s])])
            recs, cp = records[shard], checkpoint[shard]
            if cp and rnd.random() < 0.2:  # a replay: anything up to the checkpoint, or beyond
                start = rnd.randrange(cp)
                batch, advance = recs[start : start + rnd.randint(1, 300)], False
                replays += 1
            else:
                batch, advance = recs[cp : cp + rnd.randint(1, limit[shard])], True
            deliveries += 1
            try:
                response = handler.handler(_event(batch, shard, table), _Ctx())
            except BatchProcessingError:
                errors += 1
                if advance:
                    limit[shard] = max(1, len(batch) // 2)
                continue
            if not advance:
                continue
            failed = [int(f["itemIdentifier"]) for f in response["batchItemFailures"]]
            seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in recs]
            if failed:
                partial += 1
                checkpoint[shard] = seqs.index(min(failed))
            else:
                checkpoint[shard] = cp + len(batch)
                limit[shard] = 300
            if rnd.random() < 0.1:  # a duplicate delivery of the same batch
                replays += 1
                try:
                    handler.handler(_event(batch, shard, table), _Ctx())
                except BatchProcessingError:
                    errors += 1
    finally:
        handler.use_store(None)
    drift = sum(reconcile(t, "2026-11").drift for t in tenants)
    sec.add(
        "drift after a chaos run (reconcile, 3 tenants, 1,200 events, 2 shards)",
        drift,
        target="0",
        ok=drift == 0,
        baseline=(
            f"{deliveries} deliveries: {replays} replays/duplicates, {partial} partial "
            f"failures, {errors} function errors (bisected); {chaos.refused} writes refused, "
            f"{chaos.lost} replies lost after the write"
        ),
    )


def run() -> Section:
    from functions.common import ddb
    from functions.common.config import TableNames
    from functions.usage import handler
    from functions.usage.aggregator import StreamEvent, plan, seq_key
    from functions.usage.logic import UsageFact

    sec = Section("usage")
    table = TableNames.from_env().usage
    ddb.reset_client()
    handler.use_store(None)
    client = ddb.client()

    # -- writes per event ------------------------------------------------------------------
    for n in (100, 1000):
        items = _events(n, f"writes-{n}")
        records = _records(items, 10**21, table)
        with count_calls(client) as calls:
            handler.handler(_event(records, SHARD, table), _Ctx())
        writes = sum(1 for c in calls if c == "UpdateItem")
        items_touched = len(plan(StreamEvent(seq_key(10**21 + i), 0, UsageFact.from_item(x))
                                 for i, x in enumerate(items)))  # fmt: skip
        sec.add(
            f"rollup writes for a batch of {n:,} events from 5 keys",
            writes,
            unit="writes",
            target="= distinct rollup items touched",
            ok=writes == items_touched,
            baseline=f"{items_touched} distinct items; {n:,} events",
        )
        sec.add(
            f"rollup writes per usage event, batch of {n:,}",
            round(writes / n, 4),
            unit="writes/event",
            baseline="one write per event and item: 13 writes/event",
            target="falls as batches grow",
            ok=writes / n < 1,
        )
        # A replay of the same batch writes nothing new (one failed condition per item).
        with count_calls(client) as calls:
            handler.handler(_event(records, SHARD, table), _Ctx())
        sec.add(
            f"write requests to replay the same batch of {n:,} (all refused by the marks)",
            sum(1 for c in calls if c == "UpdateItem"),
            unit="requests",
            baseline="per-event idempotency records: one conditional write per event",
        )

    # -- throughput ------------------------------------------------------------------------
    for label, keys, hours in (("5 keys, one hour", 5, 1), ("50 keys over 6 hours", 50, 6)):
        items = _events(5000, f"throughput-{keys}", keys=keys, spread_ms=hours * 3_600_000)
        records = _records(items, 2 * 10**21, table)
        with count_calls(client) as calls:
            t0 = time.perf_counter()
            for i in range(0, len(records), 1000):
                handler.handler(_event(records[i : i + 1000], SHARD, table), _Ctx())
            seconds = time.perf_counter() - t0
        writes = sum(1 for c in calls if c == "UpdateItem")
        sec.add(
            f"aggregation throughput, handler in-process against moto ({label}, batches of 1,000)",
            round(len(records) / seconds),
            unit="events/s",
            baseline=f"{len(records):,} events, {writes:,} rollup writes in {seconds:.1f} s",
            note="bound by moto's ~10 ms per conditional write (serialised)",
        )
    facts = [StreamEvent(seq_key(i), 0, UsageFact.from_item(x)) for i, x in enumerate(items)]
    t0 = time.perf_counter()
    plan(facts)
    seconds = time.perf_counter() - t0
    sec.add(
        "in-memory aggregation alone (no I/O)",
        round(len(facts) / seconds),
        unit="events/s",
        note="the aggregator is bound by its writes, not by counting",
    )

    # -- chaos -----------------------------------------------------------------------------
    _chaos_run(sec, table)
    return sec
