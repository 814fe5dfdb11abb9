"""The monthly statements run on moto: every tenant's statement for last month, written to
an encrypted (SSE-KMS), versioned bucket; totals equal the raw events; failures isolated."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from functions.common import ddb
from functions.common.config import TableNames
from functions.statements import handler as statements_handler
from functions.statements.config import ENV_BUCKET
from functions.usage import handler as usage_handler
from tests.integration.conftest import Run
from tests.statement_support import Page
from tests.usage_support import Context, lambda_event, stream_record, usage_item

BUCKET = "tollgate-statements-test"
SCHEDULED = {
    "version": "0",
    "id": "e7b8c3a4",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "time": "2026-12-01T06:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/monthly-statements"],
    "detail": {},
}


@pytest.fixture
def bucket(dynamodb: Any, moto_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import boto3

    kms = boto3.client("kms", endpoint_url=moto_server.endpoint)
    key_id = kms.create_key(Description="statements")["KeyMetadata"]["KeyId"]
    s3 = boto3.client("s3", endpoint_url=moto_server.endpoint)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(
        Bucket=BUCKET,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": key_id,
                    },
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )
    monkeypatch.setenv(ENV_BUCKET, BUCKET)
    statements_handler.use_writer(None)
    ddb.reset_client()
    usage_handler.use_store(None)
    yield s3
    statements_handler.use_writer(None)
    usage_handler.use_store(None)


@pytest.fixture
def tenants(cli: Run, dynamodb: Any) -> list[dict[str, Any]]:
    """Three tenants; acme and globex used the API in November (and acme in December)."""
    cli("plans", "create", "gold", "--price-per-1k-prompt", "0.002").ok()
    for name in ("acme", "globex", "initech"):
        cli("tenants", "create", name, "--plan", "gold").ok()
    items = [
        usage_item(i, tenant=("acme", "globex")[i % 2], key=f"k{i % 4}", cost=1000 + i,
                   env="test" if i % 5 == 0 else "live", plan="gold")
        for i in range(30)
    ] + [usage_item(99, tenant="acme", ts_ms=1_796_169_600_000, cost=5)]  # fmt: skip
    for item in items:
        dynamodb.put_item(
            TableName=TableNames().usage,
            Item={k: ddb.to_ddb(v) for k, v in item.items() if v is not None},
        )
    records = [stream_record(item, 10**21 + n) for n, item in enumerate(items)]
    assert usage_handler.handler(lambda_event(records), Context())["batchItemFailures"] == []
    return items


def read(s3: Any, key: str, version: str | None = None) -> str:
    extra = {"VersionId": version} if version else {}
    return str(s3.get_object(Bucket=BUCKET, Key=key, **extra)["Body"].read().decode())


def test_the_monthly_run_writes_last_months_statements(
    bucket: Any, tenants: list[dict[str, Any]]
) -> None:
    result = statements_handler.handler(SCHEDULED, Context())
    assert result == {"period": "2026-11", "written": ["acme", "globex", "initech"], "failed": []}
    for tenant in ("acme", "globex", "initech"):
        document = json.loads(read(bucket, f"statements/2026-11/{tenant}.json"))
        raw = [i for i in tenants if i["tenant_id"] == tenant and i["environment"] == "live"
               and i["ts"] < 1_796_169_600_000]  # fmt: skip
        assert document["totals"]["amount_micros"] == sum(i["cost_micros"] for i in raw)
        assert document["totals"]["requests"] == len(raw)
        rows = list(csv.DictReader(io.StringIO(read(bucket, f"statements/2026-11/{tenant}.csv"))))
        assert rows[-1]["model"] == "TOTAL"
        assert rows[-1]["amount_usd"] == document["totals"]["amount_usd"]
        head = bucket.head_object(Bucket=BUCKET, Key=f"statements/2026-11/{tenant}.json")
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["ContentType"] == "application/json"
        # The HTML page: the same totals, a cost bar per day with live usage.
        page = read(bucket, f"statements/2026-11/{tenant}.html")
        head = bucket.head_object(Bucket=BUCKET, Key=f"statements/2026-11/{tenant}.html")
        assert head["ContentType"] == "text/html; charset=utf-8"
        assert head["ServerSideEncryption"] == "aws:kms"
        parsed = Page(page)
        assert parsed.totals()["amount_usd"] == document["totals"]["amount_usd"]
        cost = [b for b in parsed.bars if "cost" in (b.get("class") or "")]
        assert sum(int(b["data-value"] or 0) for b in cost) == document["totals"]["amount_micros"]
        if not raw:
            assert "No live usage in 2026-11" in page


def test_a_rerun_keeps_the_earlier_versions(bucket: Any, tenants: list[dict[str, Any]]) -> None:
    statements_handler.handler({**SCHEDULED, "tenants": ["acme"]}, Context())
    statements_handler.handler({"period": "2026-11", "tenants": ["acme"]}, Context())
    versions = bucket.list_object_versions(Bucket=BUCKET, Prefix="statements/2026-11/acme.json")
    assert len(versions["Versions"]) == 2


def test_a_tenant_whose_rollups_disagree_is_skipped_and_the_run_fails(
    bucket: Any, tenants: list[dict[str, Any]], dynamodb: Any
) -> None:
    dynamodb.update_item(
        TableName=TableNames().rollups,
        Key={"tenant_id": {"S": "globex"}, "sk": {"S": "month#2026-11#all#-"}},
        UpdateExpression="ADD cost_micros :c",
        ExpressionAttributeValues={":c": {"N": "1"}},
    )
    with pytest.raises(statements_handler.StatementsIncomplete):
        statements_handler.handler(SCHEDULED, Context())
    keys = {o["Key"] for o in bucket.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert "statements/2026-11/acme.json" in keys and "statements/2026-11/initech.csv" in keys
    assert not any("globex" in k for k in keys)


def test_the_period_comes_from_the_schedule_or_the_caller() -> None:
    assert statements_handler.period_of(SCHEDULED) == "2026-11"
    assert statements_handler.period_of({**SCHEDULED, "time": "2027-01-01T06:00:00Z"}) == "2026-12"
    assert statements_handler.period_of({"period": "2026-07"}) == "2026-07"
    assert statements_handler.period_of({"detail": {"period": "2026-08"}}) == "2026-08"
