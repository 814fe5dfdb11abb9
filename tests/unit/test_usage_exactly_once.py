"""The aggregator counts each usage event exactly once, whatever Lambda delivers.

The real handler (Powertools batch processing) runs on an in-memory rollup store with
DynamoDB's conditional-update semantics: whole-batch replays, overlapping sub-batches,
batches that fail halfway (a write refused, a write applied but its reply lost, a poison
record), several shards, and a property over any partition of a stream into batches with
any replays and faults.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.usage import aggregator
from functions.usage import handler as usage_handler
from functions.usage.aggregator import (
    STALE_AFTER_S,
    StaleMarks,
    StreamEvent,
    apply_batch,
    mark_attr,
    seq_key,
)
from functions.usage.logic import RollupKey, UsageFact, aggregate
from tests.usage_support import (
    SHARD,
    Context,
    MemoryRollupStore,
    failed_seqs,
    lambda_event,
    nonzero,
    stream_record,
    usage_item,
)

SEQ0 = 4_000_000_000_000_000_000_001  # 22 digits, like real and moto sequence numbers


@pytest.fixture(autouse=True)
def _no_retry_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aggregator, "WRITE_RETRY_DELAY_S", 0.0)


@pytest.fixture
def store() -> Iterator[MemoryRollupStore]:
    memory = MemoryRollupStore()
    usage_handler.use_store(memory)
    yield memory
    usage_handler.use_store(None)


def records_for(items: Sequence[dict[str, Any]], start: int = SEQ0) -> list[dict[str, Any]]:
    return [stream_record(item, start + i) for i, item in enumerate(items)]


def run(records: Sequence[dict[str, Any]], shard: str = SHARD) -> dict[str, Any]:
    response: dict[str, Any] = usage_handler.handler(lambda_event(records, shard), Context())
    return response


def expected(items: Sequence[dict[str, Any]]) -> dict[RollupKey, dict[str, int]]:
    return nonzero(aggregate(UsageFact.from_item(i) for i in items))


def mixed_items(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    return [
        usage_item(
            i,
            key=f"k{rnd.randrange(5)}",
            principal=f"p{rnd.randrange(3)}",
            env=rnd.choice(["live", "live", "live", "test"]),
            model=rnd.choice(["tollgate-echo", "bedrock:haiku"]),
            ts_ms=1_793_491_200_000 + rnd.randrange(3 * 86_400_000),
            prompt=rnd.randrange(1, 500),
            completion=rnd.randrange(1, 500),
            cost=rnd.randrange(0, 5000),
            status=rnd.choice(["ok"] * 9 + ["error"]),
        )
        for i in range(n)
    ]


# -- one batch ---------------------------------------------------------------------------


def test_each_touched_item_is_written_once_per_batch(store: MemoryRollupStore) -> None:
    items = [usage_item(i, key=f"k{i % 5}", ts_ms=1_793_491_200_000 + i) for i in range(100)]
    response = run(records_for(items))
    assert failed_seqs(response) == [] and response["state"] == {}
    assert store.counters() == aggregate(UsageFact.from_item(i) for i in items)
    distinct = len(store.items)  # all, principal, model, 5 keys at 3 granularities + 1 line
    assert distinct == 3 * (3 + 5) + 1
    assert store.requests == distinct


def test_whole_batch_replays_add_nothing(store: MemoryRollupStore) -> None:
    items = mixed_items(60)
    records = records_for(items)
    for _ in range(3):
        assert failed_seqs(run(records)) == []
    assert nonzero(store.counters()) == expected(items)


def test_overlapping_sub_batches_add_only_what_is_new(store: MemoryRollupStore) -> None:
    items = mixed_items(100)
    records = records_for(items)
    for start, end in [(0, 40), (20, 60), (0, 10), (55, 100), (30, 90), (99, 100)]:
        assert failed_seqs(run(records[start:end])) == []
    assert nonzero(store.counters()) == expected(items)


def test_marks_hold_the_last_contributing_sequence_number(store: MemoryRollupStore) -> None:
    items = [usage_item(0, key="a"), usage_item(1, key="b"), usage_item(2, key="a")]
    run(records_for(items))
    key_a = RollupKey("acme", "hour#2026-11-01T00#key#a")
    key_b = RollupKey("acme", "hour#2026-11-01T00#key#b")
    assert store.marks(key_a) == {mark_attr(SHARD): seq_key(SEQ0 + 2)}
    assert store.marks(key_b) == {mark_attr(SHARD): seq_key(SEQ0 + 1)}


def test_non_insert_records_add_nothing(store: MemoryRollupStore) -> None:
    item = usage_item(0)
    records = [stream_record(item, SEQ0, event_name="MODIFY"),
               stream_record(item, SEQ0 + 1, event_name="REMOVE")]  # fmt: skip
    assert failed_seqs(run(records)) == []
    assert store.items == {}


def test_an_event_without_shard_id_is_refused(store: MemoryRollupStore) -> None:
    with pytest.raises(usage_handler.MissingShardId):
        usage_handler.handler(lambda_event(records_for([usage_item(0)]), shard=None), Context())
    assert store.items == {}


# -- batches that fail halfway -----------------------------------------------------------


def test_a_failed_item_write_retries_from_its_first_record(store: MemoryRollupStore) -> None:
    items = [usage_item(i, principal="p-bad" if i >= 6 else "p-ok") for i in range(10)]
    records = records_for(items)
    bad = RollupKey("acme", "day#2026-11-01#principal#p-bad")
    store.faults = lambda key: key == bad
    response = run(records)
    # Every record from the first one that adds to the failed item is reported.
    assert failed_seqs(response) == [str(SEQ0 + i) for i in range(6, 10)]
    store.faults = lambda key: False
    assert failed_seqs(run(records[6:])) == []  # Lambda resumes from the lowest
    assert nonzero(store.counters()) == expected(items)


def test_a_lost_reply_is_not_counted_twice(store: MemoryRollupStore) -> None:
    """The write applied, the reply was lost: the retry (in the same invocation) is refused
    by the item's own mark, and nothing is counted twice."""
    items = mixed_items(30)
    lost = RollupKey("acme", "month#2026-11#all#-")
    replies = {"lost": 0}

    def lose_first(key: RollupKey) -> bool:
        if key == lost and not replies["lost"]:
            replies["lost"] += 1
            return True
        return False

    store.lost_replies = lose_first
    assert failed_seqs(run(records_for(items))) == []
    assert replies["lost"] == 1
    assert nonzero(store.counters()) == expected(items)


def test_lost_replies_that_persist_are_redelivered_and_not_counted_twice(
    store: MemoryRollupStore,
) -> None:
    items = mixed_items(30)
    records = records_for(items)
    lost = {RollupKey("acme", "month#2026-11#all#-")}
    store.lost_replies = lambda key: key in lost
    store.faults = lambda key: key in lost and bool(store.items.get(key))  # then down
    response = run(records)
    assert failed_seqs(response)  # the writer did not hear back: it asks for the records
    store.lost_replies = store.faults = lambda key: False
    first = failed_seqs(response)[0]
    retry = [r for r in records if int(r["dynamodb"]["SequenceNumber"]) >= int(first)]
    assert failed_seqs(run(retry)) == []
    assert nonzero(store.counters()) == expected(items)


def test_when_every_record_fails_the_batch_raises_for_bisection(
    store: MemoryRollupStore,
) -> None:
    items = mixed_items(8)
    store.faults = lambda key: True
    with pytest.raises(BatchProcessingError):
        run(records_for(items))
    store.faults = lambda key: False
    assert failed_seqs(run(records_for(items))) == []
    assert nonzero(store.counters()) == expected(items)


def test_a_poison_record_is_never_jumped_over(store: MemoryRollupStore) -> None:
    items = mixed_items(10)
    records = records_for(items)
    del records[4]["dynamodb"]["NewImage"]["tenant_id"]  # unparseable
    response = run(records)
    assert failed_seqs(response) == [str(SEQ0 + i) for i in range(4, 10)]
    # Records after the poison one were not applied: marks stop before it.
    assert nonzero(store.counters()) == expected(items[:4])
    # Lambda bisects down to the poison record; alone, it fails the whole invocation.
    with pytest.raises(BatchProcessingError):
        run(records[4:5])
    # Retries exhausted: it goes to the on-failure queue and the shard moves on.
    assert failed_seqs(run(records[5:])) == []
    assert nonzero(store.counters()) == expected(items[:4] + items[5:])


# -- shards, stale marks ------------------------------------------------------------------


def test_shards_keep_their_own_marks(store: MemoryRollupStore) -> None:
    """Sequence numbers of different shards are unrelated: the same numbers on two shards
    are two sets of events."""
    a, b = mixed_items(20, seed=1), mixed_items(20, seed=2)
    ra, rb = records_for(a), records_for(b)  # the same sequence numbers on both shards
    run(ra[:10], "shard-a")
    run(rb[:15], "shard-b")
    run(ra[5:], "shard-a")
    run(rb, "shard-b")
    run(ra, "shard-a")
    assert nonzero(store.counters()) == expected(a + b)


def test_marks_past_the_stream_retention_are_removed_on_the_next_write() -> None:
    memory = MemoryRollupStore()
    stale = StaleMarks()
    key = RollupKey("acme", "month#2026-11#all#-")
    fact = UsageFact.from_item(usage_item(0))
    now = 1_800_000_000
    old = now - STALE_AFTER_S - 10

    def batch(shard: str, seq: int, at: int) -> None:
        result = apply_batch(
            shard, [StreamEvent(seq_key(seq), at, fact)], memory, now_s=now, stale=stale
        )
        assert result.retry_from is None

    batch("old-shard", 5, old)  # noted as stale when this write returns
    batch("recent-shard", 9, now - 60)  # its write removes old-shard's mark
    assert set(memory.marks(key)) == {mark_attr("recent-shard")}
    assert memory.counters()[key].requests == 2


def test_item_writes_may_run_in_parallel() -> None:
    memory = MemoryRollupStore()
    items = mixed_items(200)
    events = [
        StreamEvent(seq_key(SEQ0 + i), 0, UsageFact.from_item(item)) for i, item in enumerate(items)
    ]
    result = apply_batch(SHARD, events, memory, now_s=0, max_workers=8)
    assert result.retry_from is None and result.written == result.items == len(memory.items)
    assert nonzero(memory.counters()) == expected(items)


# -- any partition, any replay, any fault ---------------------------------------------------


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[int, int, list[tuple[str, int, int, int]]]:
    """(events, seed, plan): plan steps are (kind, shard, size/offset, seed)."""
    n = draw(st.integers(min_value=1, max_value=60))
    seed = draw(st.integers(min_value=0, max_value=2**16))
    steps = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["next", "next", "next", "replay", "replay-overlap"]),
                st.integers(0, 1),
                st.integers(1, 25),
                st.integers(0, 2**16),
            ),
            max_size=40,
        )
    )
    return n, seed, steps


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deliveries(), st.floats(min_value=0, max_value=0.3))
def test_any_partition_with_any_replays_and_faults_counts_each_event_once(
    spec: tuple[int, int, list[tuple[str, int, int, int]]], fault_rate: float
) -> None:
    """Lambda's contract, simulated per shard: a checkpoint; each delivery starts at the
    checkpoint (or anywhere before it, for a replay); the checkpoint moves to the lowest
    reported failure, or past the batch; an exception moves nothing."""
    n, seed, steps = spec
    rnd = random.Random(seed)
    memory = MemoryRollupStore()
    usage_handler.use_store(memory)
    try:
        items = mixed_items(n, seed=seed)
        shards = {0: [], 1: []}  # type: dict[int, list[dict[str, Any]]]
        for item in items:
            shards[rnd.randrange(2)].append(item)
        recs = {s: records_for(its, start=SEQ0 + 1000 * s) for s, its in shards.items()}
        checkpoint = {0: 0, 1: 0}
        memory.faults = lambda key: rnd.random() < fault_rate
        memory.lost_replies = lambda key: rnd.random() < fault_rate / 2

        def deliver(shard: int, batch: list[dict[str, Any]], advance: bool) -> None:
            if not batch:
                return
            try:
                failed = failed_seqs(run(batch, f"shard-{shard}"))
            except BatchProcessingError:
                return
            if not advance:
                return
            seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in recs[shard]]
            if failed:
                checkpoint[shard] = seqs.index(min(int(f) for f in failed))
            else:
                checkpoint[shard] = seqs.index(int(batch[-1]["dynamodb"]["SequenceNumber"])) + 1

        for kind, shard, size, step_seed in steps:
            cp, all_recs = checkpoint[shard], recs[shard]
            if kind == "next":
                deliver(shard, all_recs[cp : cp + size], advance=True)
            elif kind == "replay" and cp:
                start = random.Random(step_seed).randrange(cp)
                deliver(shard, all_recs[start : min(cp, start + size)], advance=False)
            elif kind == "replay-overlap":
                start = random.Random(step_seed).randrange(cp + 1)
                deliver(shard, all_recs[start : start + size], advance=start == cp)
        memory.faults = memory.lost_replies = lambda key: False
        for shard in shards:  # drain
            deliver(shard, recs[shard][checkpoint[shard] :], advance=True)
            assert checkpoint[shard] == len(recs[shard])
        assert nonzero(memory.counters()) == expected(items)
    finally:
        usage_handler.use_store(None)


def test_events_of_another_tables_stream_are_refused(store: MemoryRollupStore) -> None:
    event = lambda_event(records_for([usage_item(0)]))
    event["eventSourceARN"] = event["eventSourceARN"].replace("tollgate-usage", "tollgate-audit")
    with pytest.raises(usage_handler.WrongStream):
        usage_handler.handler(event, Context())
    assert store.items == {}


def test_a_record_repeated_inside_one_batch_counts_once(store: MemoryRollupStore) -> None:
    items = mixed_items(5)
    records = records_for(items)
    assert failed_seqs(run([*records, records[2], records[0]])) == []
    assert nonzero(store.counters()) == expected(items)
