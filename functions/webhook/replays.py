"""Leak reports already processed, so that a signed report sent again is acknowledged with
the same answer without revoking or auditing again (a replay is harmless but noisy: each
would add an ``already_revoked`` audit record and a ``tollgate.key.revoked`` event per key).

A report is identified by the SHA-256 of its raw signed body (GitHub's payload carries no
report id; the signature covers exactly these bytes, so the same bytes are the same report).
Only reports that named at least one of our keys are remembered (the others wrote nothing
the first time either), for ``ttl_s`` (default 7 days), in one item of the detector's state
table, ``webhook#reports``: ``{report id: {"e": expiry (epoch s), "l": labels}}`` where the
labels are one character per token of the report (``t`` true positive, ``f`` false). Each
save drops the expired entries and, past :data:`MAX_REPORTS`, the ones closest to expiry, so
the item stays bounded; it is conditional on the version read (concurrent deliveries).

The store never stands between a report and its revocation: if it cannot be read or written,
the report is processed as new (and a replay then revokes again, as before).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any, Final

from pynamodb.exceptions import DoesNotExist, PutError, PynamoDBException

from functions.common.models import DetectorState
from functions.common.observability import MetricUnit, logger, metrics

REPORTS_ID: Final = "webhook#reports"
MAX_REPORTS: Final = 400
ATTEMPTS: Final = 5
TRUE, FALSE = "t", "f"


def report_id(body: bytes) -> str:
    """The id of a report: SHA-256 of its raw signed body (hex)."""
    return hashlib.sha256(body).hexdigest()


def _entries(item: DetectorState | None) -> dict[str, dict[str, Any]]:
    if item is None or item.state is None:
        return {}
    raw = item.state.as_dict() if hasattr(item.state, "as_dict") else dict(item.state)
    return {str(k): dict(v) for k, v in raw.items() if isinstance(v, dict)}


class Replays:
    def __init__(self, ttl_s: int, *, clock: Callable[[], float] = time.time) -> None:
        self.ttl_s = ttl_s
        self._clock = clock

    def seen(self, rid: str) -> str | None:
        """The labels of report ``rid`` if it was processed within the TTL, else None."""
        try:
            item = DetectorState.get(REPORTS_ID, consistent_read=True)
        except DoesNotExist:
            return None
        except PynamoDBException as exc:
            logger.warning("processed reports not readable", extra={"error": type(exc).__name__})
            return None
        entry = _entries(item).get(rid)
        if entry is None or int(entry.get("e", 0)) < self._clock():
            return None
        labels = entry.get("l")
        return labels if isinstance(labels, str) else None

    def remember(self, rid: str, labels: str) -> bool:
        """Remember report ``rid`` and its labels; False if it could not be saved."""
        now = self._clock()
        for _ in range(ATTEMPTS):
            try:
                item = DetectorState.get(REPORTS_ID, consistent_read=True)
            except DoesNotExist:
                item = DetectorState(key_id=REPORTS_ID, state={})
            except PynamoDBException as exc:
                return self._not_saved(exc)
            entries = {k: v for k, v in _entries(item).items() if int(v.get("e", 0)) >= now}
            entries[rid] = {"e": int(now + self.ttl_s), "l": labels}
            if len(entries) > MAX_REPORTS:
                kept = sorted(entries.items(), key=lambda kv: -int(kv[1]["e"]))[:MAX_REPORTS]
                entries = dict(kept)
            item.state = entries
            item.updated_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
            try:
                item.save()
                return True
            except PutError as exc:
                if exc.cause_response_code != "ConditionalCheckFailedException":
                    return self._not_saved(exc)
            except PynamoDBException as exc:
                return self._not_saved(exc)
        return self._not_saved(RuntimeError("kept conflicting"))

    @staticmethod
    def _not_saved(exc: Exception) -> bool:
        logger.warning(
            "processed report not remembered: a replay would revoke again",
            extra={"error": type(exc).__name__},
        )
        metrics.add_metric(name="LeakReportNotRemembered", unit=MetricUnit.Count, value=1)
        return False
