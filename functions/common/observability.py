"""One place for Powertools logging and metrics.

Tracing is left out of the hot path on purpose: ``Tracer()`` costs ~0.5 s of cold start even
with tracing off (FACTS.md), more than the authorizer's whole budget; API Gateway and Lambda
still trace the request end to end when active tracing is on in CDK.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger(service="tollgate", log_uncaught_exceptions=False)
metrics = Metrics(namespace="Tollgate", service="tollgate")

__all__ = ["MetricUnit", "logger", "metrics"]
