"""What the detector does about a finding.

* ``suspend``: unless a human reinstated the key within the hold period (then the engine is
  told to hold the key and re-base on what the human accepted), a conditional suspension
  through :meth:`KeyService.suspend` (only an active key; it writes the audit record with
  the evidence), then ``tollgate.key.suspended`` on the bus. A key that was not active any
  more (already suspended, revoked) is left alone and nothing is published: a replayed
  finding changes nothing.
* ``alert``: ``tollgate.key.spike_alert`` (the plan's policy is ``alert``, or the evidence
  is only good enough for an alert).
* a flagged source: ``tollgate.source.stuffing``.

A suspension stands even if its event cannot be published (logged, counted): the event is
the alert, the suspension is the protection. An alert whose event cannot be published
raises, so that the batch is retried.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

from functions.common.models import SUSPENDED
from functions.common.observability import MetricUnit, logger, metrics
from functions.detector.logic import MINUTE_MS, Engine, Finding, KeyState, iso_ms
from functions.detector.store import DetectorStore
from functions.keys import KeyService, KeyServiceError
from functions.respond.events import (
    KEY_SPIKE_ALERT,
    KEY_SUSPENDED,
    SOURCE_STUFFING,
    EventNotPublished,
    EventPublisher,
)

ACTOR: Final = "tollgate-detector"


def reason(f: Finding) -> str:
    return (
        f"spike detector: {f.signal} ({f.observed:g} {f.unit}, threshold {f.threshold:.0f}, "
        f"baseline {f.baseline:.1f})"
    )


def detail(f: Finding, action: str, now: float) -> dict[str, Any]:
    """The event detail: who, what, the evidence; never a secret."""
    subject = {"key_id": f.subject} if f.kind == "key" else {"source": f.subject}
    return {
        **subject,
        "tenant_id": f.tenant_id or None,
        "principal": f.principal or None,
        "environment": f.environment or None,
        "action": action,
        **f.evidence(),
        "event_time": iso_ms(f.ts),
        "detected_at": iso_ms(int(now * 1000)),
    }


class Actions:
    def __init__(
        self,
        *,
        store: DetectorStore,
        service: KeyService | None = None,
        publisher: EventPublisher | None = None,
        hold_minutes: int = 720,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.service = service or KeyService()
        self.publisher = publisher or EventPublisher.from_env()
        self.hold_minutes = hold_minutes
        self._clock = clock

    def act(self, f: Finding, engine: Engine, state: KeyState | None = None) -> str:
        """Carry out ``f``; returns what was done: suspended | held | unchanged | alerted."""
        if f.kind == "source":
            self.publisher.publish(SOURCE_STUFFING, detail(f, "alert", self._clock()))
            metrics.add_metric(name="StuffingSourceFlagged", unit=MetricUnit.Count, value=1)
            return "alerted"
        if f.action != "suspend":
            self.publisher.publish(KEY_SPIKE_ALERT, detail(f, "alert", self._clock()))
            metrics.add_metric(name="SpikeAlert", unit=MetricUnit.Count, value=1)
            return "alerted"
        return self._suspend(f, engine, state)

    def _suspend(self, f: Finding, engine: Engine, state: KeyState | None) -> str:
        now = self._clock()
        reinstated = self.store.reinstated_at(f.subject, now - self.hold_minutes * 60)
        if reinstated is not None:
            if state is not None:
                engine.hold(state, int(reinstated * 1000) // MINUTE_MS + self.hold_minutes)
            logger.info(
                "spike on a key a human reinstated: not suspended again",
                extra={"key_id": f.subject, "signal": f.signal, "incident": f.incident_id},
            )
            metrics.add_metric(name="SuspensionHeld", unit=MetricUnit.Count, value=1)
            return "held"
        try:
            suspended = self.service.suspend(
                f.subject, reason=reason(f), actor=ACTOR, evidence=f.evidence()
            )
        except KeyServiceError as exc:  # e.g. the key record is gone: nothing to suspend
            logger.warning(
                "spike on a key that cannot be suspended",
                extra={"key_id": f.subject, "error": exc.message},
            )
            return "unchanged"
        if not suspended:
            return "unchanged"  # not active any more: a replay, or a human got there first
        metrics.add_metric(name="KeySuspended", unit=MetricUnit.Count, value=1)
        logger.warning(
            "key suspended by the spike detector",
            extra={"key_id": f.subject, "tenant_id": f.tenant_id, **f.evidence()},
        )
        try:
            self.publisher.publish(KEY_SUSPENDED, detail(f, SUSPENDED, now))
        except EventNotPublished as exc:
            logger.error("suspension event not published", extra={"error": str(exc)})
            metrics.add_metric(name="EventNotPublished", unit=MetricUnit.Count, value=1)
        return "suspended"
