"""Lambda entry point of the notice delivery function (the notices table's stream).

Each record names a notice waiting for delivery (the mapping's filter,
functions/notices/stream.py); the records of a batch are delivered concurrently, each by
:func:`functions.notices.delivery.deliver`. A receiver's failure is not a record failure:
it is recorded on the notice (``failed``, the dead letter the CLI lists). A record fails
only if the notices table does not answer; it is then reported in ``batchItemFailures`` and
Lambda delivers it again (a replayed record whose notice is no longer pending is skipped).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from functions.common.observability import log_metrics, logger
from functions.notices.config import NoticeSettings
from functions.notices.delivery import Outcome, deliver
from functions.notices.store import NoticeStore

MAX_CONCURRENT: Final = 8

_settings: NoticeSettings | None = None
_store: NoticeStore | None = None


def settings() -> NoticeSettings:
    global _settings
    if _settings is None:
        _settings = NoticeSettings.from_env()
    return _settings


def store() -> NoticeStore:
    global _store
    if _store is None:
        _store = NoticeStore(settings().tables.notices)
    return _store


def use_settings(replacement: NoticeSettings | None) -> None:
    """Swap the settings (tests, benchmarks); None: read the environment again."""
    global _settings, _store
    _settings, _store = replacement, None


def _key(record: dict[str, Any]) -> tuple[str, str]:
    image = (record.get("dynamodb") or {}).get("NewImage") or {}
    tenant = (image.get("tenant_id") or {}).get("S")
    sk = (image.get("sk") or {}).get("S")
    if not tenant or not sk:
        raise ValueError("stream record without a notice key")
    return tenant, sk


def _one(record: dict[str, Any]) -> Outcome | None:
    """The record's outcome, or None if it must be delivered again (the table failed)."""
    try:
        tenant, sk = _key(record)
    except ValueError:
        logger.error("notice stream record without a key: skipped")
        return Outcome("skipped")
    try:
        return deliver(store(), tenant, sk, settings())
    except Exception as exc:  # the notices table failed: Lambda delivers the record again
        logger.warning(
            "notice delivery not recorded: the record will be delivered again",
            extra={"tenant_id": tenant, "error": type(exc).__name__},
        )
        return None


@log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    records = event.get("Records") or []
    if not isinstance(records, list):
        raise ValueError("the event's Records is not a list")
    if len(records) > 1:
        with ThreadPoolExecutor(max_workers=min(MAX_CONCURRENT, len(records))) as pool:
            outcomes = list(pool.map(_one, records))
    else:
        outcomes = [_one(r) for r in records]
    failures = [
        {"itemIdentifier": (r.get("dynamodb") or {}).get("SequenceNumber", "")}
        for r, outcome in zip(records, outcomes, strict=True)
        if outcome is None
    ]
    return {"batchItemFailures": failures}


__all__ = ["handler", "settings", "store", "use_settings"]
