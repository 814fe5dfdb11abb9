"""Lambda entry point of the reservation sweep (EventBridge schedule, every 5 minutes; thin).

Settles the reservations of Api invocations that were killed before settling (their markers,
``functions/gate/reservations.py``): billed at the upper bound with an estimated usage event.
A DynamoDB failure fails the run (the function's error alarm); the next run starts again
from the cursor.
"""

from __future__ import annotations

from typing import Any

from functions.common.observability import MetricUnit, log_metrics, logger, metrics
from functions.sweep.config import SweepSettings
from functions.sweep.logic import sweep


def run(event: dict[str, Any] | None = None) -> dict[str, object]:
    report = sweep(SweepSettings.from_env())
    metrics.add_metric(name="OrphanedReservations", unit=MetricUnit.Count, value=report.settled)
    return report.as_dict()


@log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, object]:
    return run(event)
