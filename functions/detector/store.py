"""Data access of the detector: its state items, plans (cached), flagged sources, and the
audit trail's reinstatements.

State items (``DetectorState``): ``<key id>`` per key, ``src#<address>`` per source that
refused keys came from, and one ``flags#sources`` item listing the sources flagged for
stuffing right now (the usage stream reads that one item per batch instead of one item per
source address). Every save is conditional on the version read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Final

from pynamodb.exceptions import DoesNotExist, PutError

from functions.common.models import AuditRecord, DetectorState, Plan
from functions.detector.logic import DEFAULT_POLICY, Policy, SourceState
from functions.keys.views import iso

FLAGS_ID: Final = "flags#sources"
SOURCE_PREFIX: Final = "src#"
REINSTATED: Final = "key.reinstated"


def source_id(source: str) -> str:
    return SOURCE_PREFIX + source


def _plain(value: Any) -> Any:
    """A MapAttribute's raw contents as plain dicts/lists."""
    if hasattr(value, "as_dict"):
        value = value.as_dict()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def state_of(item: DetectorState) -> dict[str, Any]:
    data = _plain(item.state) if item.state is not None else {}
    return data if isinstance(data, dict) else {}


class DetectorStore:
    def __init__(self, *, clock: Callable[[], float] = time.time, plan_ttl_s: float = 60.0):
        self._clock = clock
        self._plan_ttl = plan_ttl_s
        self._plans: dict[str, tuple[float, Policy]] = {}

    # -- plans ------------------------------------------------------------------------
    def policy(self, plan: str | None) -> Policy:
        """The spike policy of ``plan`` (cached); the defaults for an unknown plan."""
        if not plan:
            return DEFAULT_POLICY
        now = self._clock()
        cached = self._plans.get(plan)
        if cached is not None and now - cached[0] < self._plan_ttl:
            return cached[1]
        try:
            p = Plan.get(
                plan, attributes_to_get=["name", "spike_policy", "spike_factor", "spike_floor_tpm"]
            )
            policy = Policy.of(p.spike_policy, p.spike_factor, p.spike_floor_tpm)
        except DoesNotExist:
            policy = DEFAULT_POLICY
        self._plans[plan] = (now, policy)
        return policy

    # -- state items ------------------------------------------------------------------
    @staticmethod
    def load(ids: Iterable[str]) -> dict[str, DetectorState]:
        """The state items of ``ids`` (a new, unsaved item for each that does not exist)."""
        wanted = sorted(set(ids))
        found = {item.key_id: item for item in DetectorState.batch_get(wanted)} if wanted else {}
        return {i: found.get(i) or DetectorState(key_id=i, state={}) for i in wanted}

    @staticmethod
    def reload(item_id: str) -> DetectorState:
        try:
            return DetectorState.get(item_id, consistent_read=True)
        except DoesNotExist:
            return DetectorState(key_id=item_id, state={})

    def save(self, item: DetectorState, state: dict[str, Any]) -> bool:
        """Write ``state`` if the item is still at the version read; False if it is not."""
        item.state = state
        item.updated_at = iso(self._clock())
        try:
            item.save()
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # -- flagged sources --------------------------------------------------------------
    def flagged_sources(self) -> dict[str, SourceState]:
        """The sources flagged for stuffing (one read; eventually consistent is fine)."""
        try:
            item = DetectorState.get(FLAGS_ID)
        except DoesNotExist:
            return {}
        return {
            source: SourceState(flag=dict(flag))
            for source, flag in state_of(item).items()
            if isinstance(flag, dict)
        }

    def add_flags(self, flags: dict[str, dict[str, Any]], now_minute: int) -> None:
        """Merge ``flags`` (source -> flag) into the flags item; drop the expired ones."""
        for _ in range(5):
            item = self.reload(FLAGS_ID)
            current = {
                s: f
                for s, f in state_of(item).items()
                if isinstance(f, dict) and int(f.get("until", 0)) >= now_minute
            }
            current.update(flags)
            if self.save(item, current):
                return
        raise RuntimeError("could not update the flagged sources (kept conflicting)")

    # -- audit ------------------------------------------------------------------------
    def reinstated_at(self, key_id: str, since: float) -> float | None:
        """When a human last reinstated ``key_id``, if at or after ``since`` (epoch s)."""
        latest = None
        since_text = iso(since)
        for record in AuditRecord.by_key.query(
            key_id,
            AuditRecord.event_id >= since_text,
            filter_condition=AuditRecord.action == REINSTATED,
        ):
            at = datetime.strptime(record.at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            latest = max(latest or 0.0, at.timestamp())
        return latest
