"""Writing statements to S3 (the bucket encrypts with its KMS key and keeps versions)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from functions.statements.logic import Statement


def _s3() -> Any:
    import boto3

    return boto3.client("s3")


class S3StatementWriter:
    def __init__(self, bucket: str, prefix: str = "statements/", client: Callable[[], Any] = _s3):
        self.bucket = bucket
        self.prefix = prefix
        self._client = client

    def keys(self, statement: Statement) -> tuple[str, str]:
        base = f"{self.prefix}{statement.period}/{statement.tenant_id}"
        return f"{base}.json", f"{base}.csv"

    def write(self, statement: Statement) -> tuple[str, str]:
        """Put the statement's JSON and CSV; a re-run adds a new version of each."""
        json_key, csv_key = self.keys(statement)
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
        return json_key, csv_key
