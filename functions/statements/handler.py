"""Lambda entry point of the monthly statements run (EventBridge schedule, thin).

The scheduled event's ``time`` decides the month: the one before it (the schedule fires on
the 1st, hours after midnight, when the stream has long caught up). A manual invocation may
name ``{"period": "YYYY-MM"}`` and optionally ``{"tenants": [...]}``. Every tenant gets a
statement (an empty one if it had no live usage); a tenant whose statement cannot be built
is logged and counted, the others are still written, and the run then fails so that the
function's error alarm fires. Re-running writes new object versions.
"""

from __future__ import annotations

import calendar
import time
from typing import Any

from functions.common.observability import MetricUnit, log_metrics, logger, metrics
from functions.statements import service
from functions.statements.config import StatementsSettings
from functions.statements.logic import StatementMismatch
from functions.statements.store import S3StatementWriter
from functions.usage.logic import previous_month

_writer: S3StatementWriter | None = None


def writer() -> S3StatementWriter:
    global _writer
    if _writer is None:
        settings = StatementsSettings.from_env()
        _writer = S3StatementWriter(settings.bucket, settings.prefix)
    return _writer


def use_writer(replacement: S3StatementWriter | None) -> None:
    global _writer
    _writer = replacement


class StatementsIncomplete(Exception):
    """Some tenants' statements could not be written (see the log)."""


def period_of(event: dict[str, Any]) -> str:
    detail = event.get("detail") if isinstance(event.get("detail"), dict) else {}
    explicit = event.get("period") or (detail or {}).get("period")
    if explicit:
        return str(explicit)
    when = event.get("time")
    if isinstance(when, str) and when:
        return previous_month(calendar.timegm(time.strptime(when, "%Y-%m-%dT%H:%M:%SZ")))
    return previous_month()


def run(event: dict[str, Any]) -> dict[str, Any]:
    period = period_of(event)
    tenants = event.get("tenants") or service.tenant_ids()
    written, failed = [], []
    for tenant_id in tenants:
        try:
            statement = service.statement(tenant_id, period)
            writer().write(statement, service.daily(tenant_id, period))
        except (StatementMismatch, ValueError) as exc:
            logger.error("statement not written", extra={"tenant_id": tenant_id, "error": str(exc)})
            failed.append(tenant_id)
            continue
        written.append(tenant_id)
        logger.info(
            "statement written",
            extra={"tenant_id": tenant_id, "period": period, "lines": len(statement.lines)},
        )
    metrics.add_metric(name="StatementsWritten", unit=MetricUnit.Count, value=len(written))
    metrics.add_metric(name="StatementsFailed", unit=MetricUnit.Count, value=len(failed))
    return {"period": period, "written": written, "failed": failed}


@log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = run(event)
    if result["failed"]:
        raise StatementsIncomplete(
            f"{len(result['failed'])} statement(s) for {result['period']} not written"
        )
    return result
