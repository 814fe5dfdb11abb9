"""Which thresholds of which monthly limits a tenant's month totals have reached (pure).

A threshold is *reached* when ``used * 100 >= pct * limit`` (integers: exact, no floats).
Detection is level-triggered, not edge-triggered: whoever sees totals at or past a threshold
whose notice does not exist yet emits it (functions/notices/emitter.py: a conditional put
decides who). So a crash between the rollup write and the notice write loses nothing: the
next write of the tenant's month item -- or the replay of the same records -- sees the same
level and emits then. A batch that jumps from 40 % to 100 % emits 50, 80 and 100.

What 100 % means: ``used >= limit``. Requests reach it exactly (the gate admits up to the
limit). Tokens and spend are reserved at their worst case before the model call and settled
after, so the gate may refuse a request while the settled total is still a little below the
limit; the 100 % notice then comes only if settled usage reaches the limit. The 80 % notice
is the one to act on (docs/billing.md, "Threshold notices").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

METRICS: Final = ("requests", "tokens", "spend")
THRESHOLDS: Final = (50, 80, 100)
EVENT_TYPE: Final = "usage.threshold"
NOTICE_PREFIX: Final = "notice#"


@dataclass(frozen=True, slots=True)
class Limits:
    """A tenant's monthly live limits (None: unlimited, no notices). Spend in micro-dollars."""

    requests: int | None = None
    tokens: int | None = None
    spend: int | None = None

    def of(self, metric: str) -> int | None:
        value: int | None = getattr(self, metric)
        return value if value is not None and value > 0 else None

    def __bool__(self) -> bool:
        return any(self.of(m) is not None for m in METRICS)


def used(totals: Mapping[str, int], metric: str) -> int:
    """What a month's ``all`` rollup item says of ``metric`` (cost in micro-dollars)."""
    if metric == "requests":
        return int(totals.get("requests") or 0)
    if metric == "tokens":
        return int(totals.get("prompt_tokens") or 0) + int(totals.get("completion_tokens") or 0)
    if metric == "spend":
        return int(totals.get("cost_micros") or 0)
    raise ValueError(f"unknown metric {metric!r}")


@dataclass(frozen=True, slots=True, order=True)
class Crossing:
    """One threshold reached: what a notice says."""

    tenant_id: str
    period: str  # YYYY-MM (UTC)
    metric: str
    threshold_pct: int
    used: int
    limit: int

    @property
    def sk(self) -> str:
        return notice_sk(self.period, self.metric, self.threshold_pct)

    @property
    def id(self) -> str:
        return notice_id(self.tenant_id, self.period, self.metric, self.threshold_pct)


def notice_sk(period: str, metric: str, pct: int) -> str:
    """The notice item's sort key: one item per tenant, period, metric and threshold."""
    return f"{NOTICE_PREFIX}{period}#{metric}#{pct:03d}"


def notice_id(tenant_id: str, period: str, metric: str, pct: int) -> str:
    """The id a receiver dedupes on: deterministic, so every delivery of one notice (retries,
    redrives) carries the same id."""
    return f"ntc_{tenant_id}_{period}_{metric}_{pct}"


def reached(
    tenant_id: str, period: str, totals: Mapping[str, int], limits: Limits
) -> list[Crossing]:
    """Every (metric, threshold) whose level ``totals`` are at or past, in a stable order."""
    found = []
    for metric in METRICS:
        limit = limits.of(metric)
        if limit is None:
            continue
        value = used(totals, metric)
        for pct in THRESHOLDS:
            if value * 100 >= pct * limit:
                found.append(Crossing(tenant_id, period, metric, pct, value, limit))
    return found


def month_total_period(sk: str) -> str | None:
    """``YYYY-MM`` if ``sk`` is a tenant's month total (``month#<YYYY-MM>#all#-``), else None."""
    parts = sk.split("#")
    if len(parts) == 4 and parts[0] == "month" and parts[2] == "all" and parts[3] == "-":
        return parts[1]
    return None
