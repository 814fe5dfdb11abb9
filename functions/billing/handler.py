"""Lambda entry point of the hourly billing export (EventBridge schedule, thin).

Each run exports, to every configured destination, the due hours (closed and settled:
functions/billing/logic.py) of the month of the event's ``time`` and of the month 24 hours
before it, so the last hours of a month still go out on the 1st. A manual invocation may
name ``{"period": "YYYY-MM"}`` and ``{"destinations": [...]}``. The run is idempotent: a
retry, an overlap with the CLI (the ledger's versioned writes refuse the second writer) or
a rerun sends nothing twice. A run with meters left pending or rejected fails, so the
function's error alarm fires; the next hourly run re-sends what is pending.
"""

from __future__ import annotations

import calendar
import time
from typing import Any

from functions.billing import config, export
from functions.billing.logic import MARKETPLACE, STRIPE
from functions.billing.sinks import DestinationUnauthorized, MarketplaceSink, Sink, StripeSink
from functions.common.observability import MetricUnit, log_metrics, logger, metrics


class ExportIncomplete(Exception):
    """Some meters are pending or were rejected (see the log; the next run retries)."""


def sink_for(destination: str) -> Sink:
    import os

    if destination == STRIPE:
        return StripeSink(config.stripe_api_key(), os.environ.get(config.ENV_STRIPE_API_BASE))
    if destination == MARKETPLACE:
        return MarketplaceSink(product_code=os.environ.get(config.ENV_PRODUCT_CODE) or None)
    raise ValueError(f"unknown destination {destination!r}")


def when(event: dict[str, Any]) -> float:
    stamp = event.get("time")
    if isinstance(stamp, str) and stamp:
        return float(calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")))
    return time.time()


def periods_of(event: dict[str, Any], now_s: float) -> list[str]:
    if event.get("period"):
        return [str(event["period"])]
    months = {time.strftime("%Y-%m", time.gmtime(t)) for t in (now_s - 86400, now_s)}
    return sorted(months)


def run(event: dict[str, Any]) -> dict[str, Any]:
    now_s = when(event)
    wanted = event.get("destinations") or config.destinations()
    results = []
    for destination in wanted:
        sink = sink_for(destination)
        for period in periods_of(event, now_s):
            try:
                report = export.run(destination, period, sink, now_s=now_s).as_dict()
            except DestinationUnauthorized:
                config.forget_stripe_key()  # the next run reads the (rotated) secret again
                raise
            report.pop("tenants")
            results.append(report)
            logger.info("billing export", extra=report)
            metrics.add_metric(name="MetersSent", unit=MetricUnit.Count, value=report["sent"])
            metrics.add_metric(name="MetersPending", unit=MetricUnit.Count, value=report["pending"])
    return {"runs": results, "ok": all(r["ok"] for r in results)}


@log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = run(event)
    if not result["ok"]:
        raise ExportIncomplete("billing export left meters pending or rejected")
    return result
