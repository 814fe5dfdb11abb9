"""Writing statements to S3 (the bucket encrypts with its KMS key and keeps versions):
the JSON document, the CSV and the HTML page (functions/statements/html.py) of each."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from functions.statements import html
from functions.statements.logic import Statement


def _s3() -> Any:
    import boto3

    return boto3.client("s3")


class S3StatementWriter:
    def __init__(self, bucket: str, prefix: str = "statements/", client: Callable[[], Any] = _s3):
        self.bucket = bucket
        self.prefix = prefix
        self._client = client

    def keys(self, statement: Statement) -> tuple[str, str, str]:
        base = f"{self.prefix}{statement.period}/{statement.tenant_id}"
        return f"{base}.json", f"{base}.csv", f"{base}.html"

    def write(
        self, statement: Statement, days: Iterable[Mapping[str, Any]] = ()
    ) -> tuple[str, str, str]:
        """Put the statement's JSON, CSV and HTML page (``days``: its per-day usage, for the
        chart); a re-run adds a new version of each."""
        json_key, csv_key, html_key = self.keys(statement)
        client = self._client()
        meta = {"tenant-id": statement.tenant_id, "period": statement.period}
        client.put_object(
            Bucket=self.bucket,
            Key=json_key,
            Body=json.dumps(statement.as_dict(), indent=2).encode(),
            ContentType="application/json",
            Metadata=meta,
        )
        client.put_object(
            Bucket=self.bucket,
            Key=csv_key,
            Body=statement.to_csv().encode(),
            ContentType="text/csv",
            Metadata=meta,
        )
        client.put_object(
            Bucket=self.bucket,
            Key=html_key,
            Body=html.render(statement.as_dict(), days).encode(),
            ContentType="text/html; charset=utf-8",
            Metadata=meta,
        )
        return json_key, csv_key, html_key
