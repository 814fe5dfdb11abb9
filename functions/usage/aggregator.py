"""Apply one stream batch to the rollups: each touched item written once, each event counted once.

The exactly-once scheme: per-item, per-shard sequence watermarks
=================================================================

Lambda feeds this function one batch at a time per shard of the usage table's stream, in
shard order (the mapping's parallelization factor is 1: one batch per shard in flight). A
batch may be delivered again, whole or in part: after a function error (Lambda bisects it),
after a partial batch response (Lambda resumes from the lowest reported sequence number),
or as a duplicate. Records are never delivered past one that has not succeeded, except
when retries are exhausted and the records go to the on-failure queue.

Every rollup item carries, for each shard that ever added to it, a **mark**: the sequence
number of the last record of that shard whose usage the item contains. The invariant:

    an item holds exactly the contributions of shard S's records with sequence number
    <= its mark for S, and none above it.

One batch becomes, in memory, one delta per touched item, together with the sequence
numbers that contributed to it (:class:`ItemDelta`). Each item gets one conditional
``UpdateItem``::

    ADD requests :r, errors :e, ...   SET mk:<shard> = :last
    IF  attribute_not_exists(mk:<shard>) OR mk:<shard> < :first

where ``:first``/``:last`` are the first and last sequence numbers that contribute to this
item in this batch. The update is atomic, so the deltas and the mark move together. If
the condition fails, DynamoDB returns the item as it is (``ReturnValuesOnConditionCheckFailure``)
and the item's mark ``M`` tells what it holds already: the update is recomputed from the
contributions above ``M`` only (none: a pure replay, nothing to write). So:

* a replayed batch, or any replayed sub-batch, adds nothing twice: every item it touches
  has a mark at or beyond the replayed records;
* overlapping batches (a retry that starts in the middle of an earlier batch and runs past
  its end) add exactly the part each item has not seen;
* a batch that fails halfway (some item writes failed, or a record could not be parsed)
  reports the lowest sequence number that still has to be applied; Lambda delivers again
  from there, items written already skip what they hold, failed items apply all of it.

Records after an unparseable record are not applied in that invocation, so a mark never
jumps over a record its item has not counted; the poison record is retried, isolated by
bisection and finally sent to the on-failure queue.

Sequence numbers are compared as strings zero-padded to 40 digits (DynamoDB allows 21 to
40 digits), which order like the numbers. A mark is stored as ``<40 digits>@<epoch s>`` (the
record's approximate creation time): ``<`` on such strings still compares the sequence
numbers (an equal number compares greater because the mark is longer), and the time lets
a later write ``REMOVE`` marks of shards whose records the stream no longer holds (24 h
retention, plus a margin), so long-lived items (a month) do not grow by one mark per
shard rotation. Cost: one write per touched item per batch, plus one conditional-check
failure per item per replay; no read, no per-event record.

DynamoDB stream records carry no shard id, so the mapping sets a tumbling window: Lambda
then puts ``shardId`` into every event (see functions/usage/handler.py).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final, Protocol

from functions.usage.logic import Counters, MalformedEvent, RollupKey, UsageFact, rollup_keys

SEQ_DIGITS: Final = 40
MARK_PREFIX: Final = "mk:"
STREAM_RETENTION_S: Final = 24 * 3600
STALE_AFTER_S: Final = STREAM_RETENTION_S + 3600  # a mark older than this protects nothing
MAX_CONFLICTS: Final = 3  # conditional failures per item and batch before giving up
WRITE_ATTEMPTS: Final = 3  # attempts per item write that fails (throttled, timed out)
WRITE_RETRY_DELAY_S = 0.05  # then 0.1 s; tests set 0


def seq_key(sequence_number: str | int) -> str:
    """A stream sequence number as a 40-digit string (orders like the number)."""
    text = str(sequence_number)
    if not (text.isascii() and text.isdigit()) or len(text) > SEQ_DIGITS:
        raise MalformedEvent(f"invalid stream sequence number {text[:48]!r}")
    return text.zfill(SEQ_DIGITS)


def mark_attr(shard_id: str) -> str:
    """The item attribute holding the mark of ``shard_id``."""
    if not shard_id:
        raise ValueError("a shard id is required")
    return MARK_PREFIX + shard_id


def mark_value(seq: str, at_s: int) -> str:
    return f"{seq}@{int(at_s)}"


def mark_seq(value: str) -> str:
    return value.split("@", 1)[0]


def mark_at(value: str) -> int:
    _, _, at = value.partition("@")
    return int(at) if at.isascii() and at.isdigit() else 0


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One usage event as delivered by the stream."""

    seq: str  # seq_key(...)
    at_s: int  # the record's ApproximateCreationDateTime
    fact: UsageFact


@dataclass(frozen=True, slots=True)
class Suffix:
    first: str
    last: str
    last_at: int
    counters: Counters
    events: int


@dataclass(slots=True)
class ItemDelta:
    """One item's share of a batch: each contributing record's sequence number and counts."""

    key: RollupKey
    entries: list[tuple[str, int, Counters]] = field(default_factory=list)  # by seq

    def after(self, applied: str | None) -> Suffix | None:
        """The sum of the contributions above sequence number ``applied`` (None: all)."""
        picked = [e for e in self.entries if applied is None or e[0] > applied]
        if not picked:
            return None
        total = Counters()
        for _, _, counters in picked:
            total.add(counters)
        return Suffix(picked[0][0], picked[-1][0], picked[-1][1], total, len(picked))


def plan(events: Iterable[StreamEvent]) -> dict[RollupKey, ItemDelta]:
    """Aggregate a batch in memory: one :class:`ItemDelta` per touched item."""
    items: dict[RollupKey, ItemDelta] = {}
    seen: set[str] = set()
    for event in sorted(events, key=lambda e: e.seq):
        if event.seq in seen:  # the same record twice in one batch counts once
            continue
        seen.add(event.seq)
        counters = Counters.of(event.fact)
        for key in rollup_keys(event.fact):
            delta = items.get(key)
            if delta is None:
                delta = items[key] = ItemDelta(key)
            delta.entries.append((event.seq, event.at_s, counters))
    return items


# -- the store the batch is applied to --------------------------------------------------


class StoreUnavailable(Exception):
    """The rollups table did not answer (throttled, down): retry the records later."""


@dataclass(frozen=True, slots=True)
class Applied:
    marks: Mapping[str, str]  # the item's mark attributes after the write
    # -- threshold notices (issue 14): the item's measures after the write ({}: unknown) --
    totals: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Behind:
    """The condition failed: the item's mark for the shard is at or past ``:first``."""

    mark: str  # the item's mark for the shard (its sequence number part)
    # -- threshold notices (issue 14): the item's measures as they are ({}: unknown) --
    totals: Mapping[str, int] = field(default_factory=dict)


# -- threshold notices (issue 14) -------------------------------------------------------
# Called with (tenant id, sort key, measures) after each write of an item, or when a replay
# is refused, with the item's measures then; False: the notices could not be written, so the
# item's records are delivered again (functions/notices/emitter.py).
Observer = Callable[[str, str, Mapping[str, int]], bool]


class RollupStore(Protocol):
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
        """Add ``counters`` and set ``mark_attr`` to ``mark`` if the item's mark for the
        shard is absent or below ``first``; also REMOVE the attributes ``remove``."""
        ...


class StaleMarks:
    """Marks known to be past the stream's retention, per item, dropped on its next write.

    Learnt from the item as each write returns it (no extra read, no extra write); bounded
    (least recently noted items are forgotten: a forgotten stale mark is only bytes).
    """

    def __init__(self, max_items: int = 10_000) -> None:
        self._stale: OrderedDict[RollupKey, tuple[str, ...]] = OrderedDict()
        self._max = max_items
        self._lock = threading.Lock()

    def note(self, key: RollupKey, marks: Mapping[str, str], now_s: float) -> None:
        stale = tuple(a for a, v in marks.items() if mark_at(v) < now_s - STALE_AFTER_S)
        with self._lock:
            if not stale:
                self._stale.pop(key, None)
                return
            self._stale[key] = stale
            self._stale.move_to_end(key)
            while len(self._stale) > self._max:
                self._stale.popitem(last=False)

    def take(self, key: RollupKey, keep: str) -> tuple[str, ...]:
        with self._lock:
            stale = self._stale.pop(key, ())
        return tuple(a for a in stale if a != keep)


@dataclass
class BatchResult:
    retry_from: str | None = None  # lowest sequence number to deliver again (None: done)
    items: int = 0  # items the batch touches
    written: int = 0  # item writes that added something
    replayed: int = 0  # items that held all of their share already (nothing added)
    requests: int = 0  # write requests made, conditional-check failures included
    failed: int = 0  # items not written (their records are retried)


@dataclass(frozen=True, slots=True)
class _ItemOutcome:
    written: bool
    requests: int
    retry_from: str | None = None


def apply_batch(
    shard_id: str,
    events: Sequence[StreamEvent],
    store: RollupStore,
    *,
    now_s: float,
    stale: StaleMarks | None = None,
    max_workers: int = 1,
    retry_delay_s: float | None = None,
    observe: Observer | None = None,
) -> BatchResult:
    """Apply ``events`` (records of one shard) to the rollups; see the module docstring.

    ``observe`` (threshold notices) sees each item as its write left it, or as it is when a
    replay is refused; when it answers False the item's records are delivered again."""
    attr = mark_attr(shard_id)
    items = plan(events)

    delay = WRITE_RETRY_DELAY_S if retry_delay_s is None else retry_delay_s

    def observed(item: ItemDelta, totals: Mapping[str, int]) -> str | None:
        """None, or the item's first record when ``observe`` wants it delivered again."""
        if observe is None or not totals or observe(item.key.tenant_id, item.key.sk, totals):
            return None
        return item.entries[0][0]

    def one(item: ItemDelta) -> _ItemOutcome:
        applied: str | None = None  # the item's mark, once learnt from a failed condition
        requests = conflicts = unavailable = 0
        seen: Mapping[str, int] = {}  # the item's measures from a refused write
        while True:
            share = item.after(applied)
            if share is None:  # it holds all of it: a replay
                again = observed(item, seen)
                return _ItemOutcome(written=False, requests=requests, retry_from=again)
            remove = stale.take(item.key, keep=attr) if stale is not None else ()
            requests += 1
            try:
                result = store.apply(
                    item.key,
                    mark_attr=attr,
                    first=share.first,
                    mark=mark_value(share.last, share.last_at),
                    counters=share.counters,
                    remove=remove,
                )
            except StoreUnavailable:
                # Retried here first (a write that applied but whose reply was lost is then
                # refused by its own mark); if it keeps failing, the records are redelivered.
                unavailable += 1
                if unavailable >= WRITE_ATTEMPTS:
                    return _ItemOutcome(written=False, requests=requests, retry_from=share.first)
                time.sleep(delay * 2 ** (unavailable - 1))
                continue
            if isinstance(result, Applied):
                if stale is not None:
                    stale.note(item.key, result.marks, now_s)
                again = observed(item, result.totals)
                return _ItemOutcome(written=True, requests=requests, retry_from=again)
            applied = mark_seq(result.mark)
            seen = result.totals
            conflicts += 1
            if conflicts > MAX_CONFLICTS:
                share = item.after(applied)
                first = share.first if share is not None else None
                return _ItemOutcome(written=False, requests=requests, retry_from=first)

    ordered = [items[k] for k in sorted(items)]
    if max_workers > 1 and len(ordered) > 1:
        with ThreadPoolExecutor(max_workers=min(max_workers, len(ordered))) as pool:
            outcomes = list(pool.map(one, ordered))
    else:
        outcomes = [one(item) for item in ordered]

    result = BatchResult(items=len(ordered))
    for outcome in outcomes:
        result.requests += outcome.requests
        if outcome.written:
            result.written += 1
        elif outcome.retry_from is not None:
            result.failed += 1
        else:
            result.replayed += 1
        # A failed write, or notices not yet written: deliver from its first record again.
        if outcome.retry_from is not None and (
            result.retry_from is None or outcome.retry_from < result.retry_from
        ):
            result.retry_from = outcome.retry_from
    return result
