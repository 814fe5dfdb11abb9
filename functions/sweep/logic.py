"""Which minutes a sweep reads, and settling what it finds (data access:
``functions/gate/reservations.py``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from functions.common.observability import logger
from functions.gate import items as it
from functions.gate import reservations
from functions.sweep.config import SweepSettings


@dataclass
class SweepReport:
    minutes: list[int] = field(default_factory=list)  # first and last minute read ([]: none)
    settled: int = 0  # markers settled and deleted
    events_written: int = 0  # of which the request had no usage event yet

    def as_dict(self) -> dict[str, object]:
        return {"minutes": self.minutes, "settled": self.settled,
                "events_written": self.events_written}  # fmt: skip


def window(last: int | None, now: float, settings: SweepSettings) -> range:
    """The minutes to read: after the cursor, up to the last minute that ended at least
    ``after_s`` ago, at most ``max_minutes`` of them (pure)."""
    end = int((now - settings.after_s) // 60) - 1  # minute m ends at (m + 1) * 60
    start = end - settings.lookback_minutes + 1 if last is None else last + 1
    return range(start, min(end, start + settings.max_minutes - 1) + 1)


def sweep(settings: SweepSettings, now: float | None = None) -> SweepReport:
    """Settle every orphaned reservation in the minutes due; the cursor moves after each
    minute is done, so a run that fails midway starts again at that minute."""
    gate, usage = settings.tables.gate, settings.tables.usage
    minutes = window(reservations.cursor(gate), time.time() if now is None else now, settings)
    report = SweepReport(minutes=[minutes[0], minutes[-1]] if minutes else [])
    for minute in minutes:
        for raw in reservations.markers(gate, minute):
            written = reservations.settle_orphan(gate, usage, raw)
            report.settled += 1
            report.events_written += int(written)
            marker = reservations.view(raw)
            logger.warning(
                "orphaned reservation settled at its upper bound",
                extra={"request_id": marker["sk"], "tenant_id": marker[it.MARKER_TENANT],
                       "tokens": marker[it.MARKER_AMOUNT], "event_written": written},
            )  # fmt: skip
        reservations.advance(gate, minute)
    return report
