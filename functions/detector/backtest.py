"""Run the detector over a recorded trace, in memory, writing nothing.

The same :class:`~functions.detector.logic.Engine` as the live stream handler; only the state
lives in dicts instead of DynamoDB. A key the detector would have suspended is treated as
suspended from then on: its later events in the trace would have been refused by the
authorizer, so they are counted (``blocked_events``) but not fed to the detector.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from functions.detector import records
from functions.detector.logic import (
    DEFAULT_POLICY,
    Engine,
    Finding,
    KeyState,
    Params,
    Policy,
    Refusal,
    SourceState,
    Usage,
    iso_ms,
)


@dataclass
class Report:
    events: int = 0
    usage_events: int = 0
    refusals: int = 0
    skipped: int = 0  # malformed lines
    keys: int = 0
    blocked_events: Counter[str] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def events_per_s(self) -> float:
        return self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def first_suspensions(self) -> dict[str, Finding]:
        """Per key, the finding that would have suspended it."""
        out: dict[str, Finding] = {}
        for f in self.findings:
            if f.kind == "key" and f.action == "suspend" and f.subject not in out:
                out[f.subject] = f
        return out

    def as_dict(self) -> dict[str, Any]:
        suspended = self.first_suspensions()
        return {
            "events": self.events,
            "usage_events": self.usage_events,
            "refusals": self.refusals,
            "skipped": self.skipped,
            "keys": self.keys,
            "elapsed_s": round(self.elapsed_s, 3),
            "events_per_s": round(self.events_per_s),
            "suspensions": [
                {**_row(f), "blocked_events": self.blocked_events[f.subject]}
                for f in sorted(suspended.values(), key=lambda f: f.ts)
            ],
            "alerts": [_row(f) for f in self.findings if f.kind == "key" and f.action == "alert"],
            "sources": [_row(f) for f in self.findings if f.kind == "source"],
        }


def _row(f: Finding) -> dict[str, Any]:
    return {
        "key_id" if f.kind == "key" else "source": f.subject,
        "tenant_id": f.tenant_id or None,
        "at": iso_ms(f.ts),
        "ts": f.ts,
        "action": f.action,
        **f.evidence(),
    }


def run(
    lines: Iterable[Mapping[str, Any]],
    *,
    policy_for: Callable[[str | None], Policy] = lambda _plan: DEFAULT_POLICY,
    params: Params | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Report:
    """Backtest the trace ``lines`` (dicts). Events are taken in event-time order."""
    started = clock()
    report = Report()
    events: list[Usage | Refusal] = []
    for line in lines:
        ev = records.trace_event(line)
        if ev is None:
            report.skipped += 1
        else:
            events.append(ev)
    events.sort(key=lambda e: e.ts)  # stable: equal times keep the trace's order

    engine = Engine(params)
    keys: dict[str, KeyState] = {}
    sources: dict[str, SourceState] = {}
    suspended: set[str] = set()
    policies: dict[str | None, Policy] = {}
    for ev in events:
        report.events += 1
        if isinstance(ev, Refusal):
            report.refusals += 1
            src = sources.setdefault(ev.source, SourceState())
            finding = engine.refusal(src, ev)
        else:
            report.usage_events += 1
            if ev.key_id in suspended:
                report.blocked_events[ev.key_id] += 1
                continue
            policy = policies.get(ev.plan)
            if policy is None:
                policy = policies[ev.plan] = policy_for(ev.plan)
            state = keys.get(ev.key_id)
            if state is None:
                state = keys[ev.key_id] = KeyState()
            finding = engine.usage(state, ev, policy, sources.get(ev.source))
            if finding is not None and finding.action == "suspend":
                suspended.add(ev.key_id)
        if finding is not None:
            report.findings.append(finding)
    report.keys = len(keys)
    report.elapsed_s = clock() - started
    return report
