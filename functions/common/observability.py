"""One place for Powertools logging and metrics.

Tracing is left out of the hot path on purpose: ``Tracer()`` costs ~0.5 s of cold start even
with tracing off (docs/design.md, measured facts), more than the authorizer's whole budget;
API Gateway and Lambda
still trace the request end to end when active tracing is on in CDK.

Each function logs and reports metrics under its own service name, which the stack sets as
``POWERTOOLS_SERVICE_NAME`` (``tollgate-authorizer``, ``tollgate-api``, ...:
``infra/functions.py`` ``FunctionSpec.service_name``); it is the ``service`` key of every log
line and the ``service`` dimension of every metric. Where it is unset (the local stack and the
CLI run the functions in-process) it is :data:`DEFAULT_SERVICE`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

SERVICE_ENV = "POWERTOOLS_SERVICE_NAME"
DEFAULT_SERVICE = "tollgate"
METRICS_NAMESPACE = "Tollgate"


def service_name() -> str:
    """This function's service name: ``POWERTOOLS_SERVICE_NAME``, else "tollgate"."""
    return os.environ.get(SERVICE_ENV, "").strip() or DEFAULT_SERVICE


logger = Logger(service=service_name(), log_uncaught_exceptions=False)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=service_name())

F = TypeVar("F", bound=Callable[..., Any])


def log_metrics(handler: F) -> F:
    """``metrics.log_metrics``, plus: with POWERTOOLS_METRICS_DISABLED (local stack, tests)
    Powertools keeps the values instead of flushing them and prints them anyway once 100
    pile up; clear them after each invocation instead."""
    decorated = metrics.log_metrics(handler)

    @functools.wraps(handler)
    def wrapper(event: Any, context: Any) -> Any:
        try:
            return decorated(event, context)
        finally:
            if is_metrics_disabled():
                metrics.clear_metrics()

    return wrapper  # type: ignore[return-value]


__all__ = [
    "DEFAULT_SERVICE",
    "METRICS_NAMESPACE",
    "SERVICE_ENV",
    "MetricUnit",
    "log_metrics",
    "logger",
    "metrics",
    "service_name",
]
