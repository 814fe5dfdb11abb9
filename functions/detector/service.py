"""One batch of the usage stream (or of refusals) through the detector, against DynamoDB.

Usage stream, per batch:

1. group the records by key; a key whose plan's policy is ``off`` is skipped (no state);
2. read the keys' state items (one BatchGetItem per 100 keys) and the flagged sources
   (one item);
3. per key, in event-time order, skip the records at or below the key's mark for this
   shard (already applied: Lambda replays a batch's tail after a partial failure), feed the
   rest to the :class:`~functions.detector.logic.Engine`, carry out its findings
   (:class:`~functions.detector.actions.Actions`), set the mark, and save the state
   conditionally on its version; on a version conflict (another shard's batch saved the key
   meanwhile) read it again and redo the key (at most 3 times);
4. report the records of every key that could not be done as failed.

Actions come before the save: a failure after an action replays the key's records, and the
replayed finding finds the key suspended already (a no-op). Without a shard id (a mapping
without its tumbling window) records are applied at least once, never skipped.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from functions.common.models import DetectorState
from functions.common.observability import MetricUnit, logger, metrics
from functions.detector.actions import Actions
from functions.detector.logic import (
    MINUTE_MS,
    Engine,
    Finding,
    KeyState,
    Refusal,
    SourceState,
    Usage,
)
from functions.detector.store import DetectorStore, source_id, state_of

ATTEMPTS: Final = 3
MARK_TTL_MIN: Final = 25 * 60  # a shard's mark outlives the stream's 24 h retention


@dataclass(frozen=True)
class Record:
    """One stream record: its batch item identifier, sequence number and usage event."""

    ident: str
    seq: int
    event: Usage


class KeyConflict(Exception):
    """A key's state kept changing under us."""


class StreamDetector:
    def __init__(
        self,
        store: DetectorStore,
        actions: Actions,
        engine: Engine | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.actions = actions
        self.engine = engine or Engine()
        self._clock = clock

    # -- usage ------------------------------------------------------------------------
    def process(self, shard_id: str | None, records: Iterable[Record]) -> set[str]:
        """Apply a batch; returns the identifiers of the records to report as failed."""
        by_key: dict[str, list[Record]] = defaultdict(list)
        for r in records:
            by_key[r.event.key_id].append(r)
        active = {
            k: rs
            for k, rs in by_key.items()
            if any(self.store.policy(r.event.plan).mode != "off" for r in rs)
        }
        if not active:
            return set()
        items = self.store.load(active)
        sources = self.store.flagged_sources()
        failed: set[str] = set()
        for key_id, recs in active.items():
            try:
                self._key(key_id, shard_id, recs, items[key_id], sources)
            except Exception as exc:
                failed.update(r.ident for r in recs)
                logger.exception(
                    "detector could not process a key; its records will be retried",
                    extra={"key_id": key_id, "error": f"{type(exc).__name__}: {exc}"},
                )
                metrics.add_metric(name="DetectorKeyFailed", unit=MetricUnit.Count, value=1)
        return failed

    def _key(
        self,
        key_id: str,
        shard_id: str | None,
        recs: list[Record],
        item: DetectorState,
        sources: dict[str, SourceState],
    ) -> None:
        ordered = sorted(recs, key=lambda r: (r.event.ts, r.seq))
        for attempt in range(ATTEMPTS):
            if attempt:
                item = self.store.reload(key_id)
            state = KeyState.from_dict(state_of(item))
            mark = state.marks.get(shard_id) if shard_id else None
            done = int(mark[0]) if mark else -1
            todo = [r for r in ordered if r.seq > done]
            if not todo:
                return  # a replay of records this key has applied already
            for r in todo:
                policy = self.store.policy(r.event.plan)
                found = self.engine.usage(state, r.event, policy, sources.get(r.event.source))
                if found is not None:
                    self._act(found, state)
            if shard_id:
                last = max(r.seq for r in todo)
                state.marks[shard_id] = [str(max(last, done)), state.minute]
                oldest = state.minute - MARK_TTL_MIN
                state.marks = {s: m for s, m in state.marks.items() if int(m[1]) >= oldest}
            if self.store.save(item, state.to_dict()):
                return
            metrics.add_metric(name="DetectorStateConflict", unit=MetricUnit.Count, value=1)
        raise KeyConflict(f"state of {key_id} kept changing")

    def _act(self, finding: Finding, state: KeyState | None) -> None:
        done = self.actions.act(finding, self.engine, state)
        metrics.add_dimension(name="signal", value=finding.signal)
        metrics.add_metric(name="DetectorFinding", unit=MetricUnit.Count, value=1)
        logger.info(
            "detector finding",
            extra={
                "subject": finding.subject,
                "kind": finding.kind,
                "signal": finding.signal,
                "action": finding.action,
                "done": done,
                "incident": finding.incident_id,
            },
        )

    # -- refusals ---------------------------------------------------------------------
    def process_refusals(self, refusals: Iterable[Refusal]) -> list[Finding]:
        """Account refused requests to their sources; flag stuffing sources."""
        by_source: dict[str, list[Refusal]] = defaultdict(list)
        for r in refusals:
            by_source[r.source].append(r)
        if not by_source:
            return []
        items = self.store.load(source_id(s) for s in by_source)
        findings: list[Finding] = []
        flags: dict[str, dict[str, object]] = {}
        for source, refs in by_source.items():
            ordered = sorted(refs, key=lambda r: r.ts)
            item = items[source_id(source)]
            for attempt in range(ATTEMPTS):
                if attempt:
                    item = self.store.reload(source_id(source))
                state = SourceState.from_dict(state_of(item))
                found = [f for r in ordered if (f := self.engine.refusal(state, r)) is not None]
                if self.store.save(item, state.to_dict()):
                    break
            else:
                raise KeyConflict(f"state of source {source} kept changing")
            if state.flag is not None:
                flags[source] = dict(state.flag)
            findings.extend(found)
        now_minute = int(self._clock() * 1000) // MINUTE_MS
        flagged = {s: f for s, f in flags.items() if int(str(f["until"])) >= now_minute}
        if flagged:  # new flags, and flags this batch extended
            self.store.add_flags(flagged, now_minute)
        for f in findings:
            self._act(f, None)
        return findings
