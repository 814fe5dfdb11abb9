"""A moto server with every table, the clients pointed at it, for the benchmark sections."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from tollgate.local import aws


@contextmanager
def moto_tables() -> Iterator[aws.MotoServer]:
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    with aws.running() as server:
        aws.point_clients_at(server.endpoint)
        import boto3

        from functions.common.config import TableNames
        from functions.common.models import create_tables

        create_tables(boto3.client("dynamodb"), TableNames())
        yield server
