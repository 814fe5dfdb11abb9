"""The exact ``BatchMeterUsage`` requests the Marketplace sink sends (botocore's Stubber
checks them parameter by parameter), and what it does with ``UnprocessedRecords`` and
``ThrottlingException``."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
from botocore.stub import Stubber

from functions.billing.customers import Customer
from functions.billing.logic import Meter
from functions.billing.sinks import MarketplaceSink

ARN = "arn:aws:license-manager::111122223333:license:l-0123456789abcdef"
CUSTOMER = Customer("acme", marketplace_account_id="123456789012", marketplace_license_arn=ARN)
HOUR = datetime(2026, 11, 5, 13, tzinfo=UTC)


def record(dimension: str, quantity: int) -> dict[str, object]:
    return {"Timestamp": HOUR, "CustomerAWSAccountId": "123456789012", "LicenseArn": ARN,
            "Dimension": dimension, "Quantity": quantity}  # fmt: skip


def test_records_unprocessed_then_throttled_then_sent() -> None:
    client = boto3.client("meteringmarketplace", region_name="us-east-1")
    meters = [Meter("acme", "2026-11-05T13", "requests", 0, 3),
              Meter("acme", "2026-11-05T13", "tokens", 0, 420)]  # fmt: skip
    both = [record("requests", 3), record("tokens", 420)]
    with Stubber(client) as stub:
        stub.add_response(
            "batch_meter_usage",
            {"Results": [{"UsageRecord": both[0], "MeteringRecordId": "r1", "Status": "Success"}],
             "UnprocessedRecords": [both[1]]},
            {"UsageRecords": both},
        )  # fmt: skip
        stub.add_client_error(
            "batch_meter_usage", "ThrottlingException", http_status_code=400,
            expected_params={"UsageRecords": [both[1]]},
        )  # fmt: skip
        stub.add_response(
            "batch_meter_usage",
            {"Results": [{"UsageRecord": both[1], "MeteringRecordId": "r2", "Status": "Success"}],
             "UnprocessedRecords": []},
            {"UsageRecords": [both[1]]},
        )  # fmt: skip
        sleeps: list[float] = []
        out = MarketplaceSink(client, sleep=sleeps.append).send(CUSTOMER, meters)
        stub.assert_no_pending_responses()
    assert {o.code for o in out.values()} == {"sent"}
    assert sleeps == [0.2, 0.4]  # exponential backoff


def test_a_rejected_customer_and_records_never_processed() -> None:
    client = boto3.client("meteringmarketplace", region_name="us-east-1")
    meter = Meter("acme", "2026-11-05T13", "requests", 0, 3)
    with Stubber(client) as stub:
        stub.add_response(
            "batch_meter_usage",
            {
                "Results": [
                    {"UsageRecord": record("requests", 3), "Status": "CustomerNotSubscribed"}
                ]
            },
            {"UsageRecords": [record("requests", 3)]},
        )
        for _ in range(2):
            stub.add_response(
                "batch_meter_usage",
                {"Results": [], "UnprocessedRecords": [record("requests", 3)]},
                {"UsageRecords": [record("requests", 3)]},
            )
        sink = MarketplaceSink(client, attempts=2, sleep=lambda s: None)
        rejected = sink.send(CUSTOMER, [meter])
        pending = sink.send(CUSTOMER, [meter])
    assert [(o.kind, o.code) for o in rejected.values()] == [("rejected", "CustomerNotSubscribed")]
    assert [(o.kind, o.code) for o in pending.values()] == [("retry", "unprocessed")]
