"""AWS Marketplace metering's rules for ``BatchMeterUsage``, in process, on a real boto3
client: the fake answers on botocore's ``before-call`` event (the hook botocore's own
``Stubber`` answers on), after botocore has validated the request against the service
model, so every request is checked for shape (at most 25 records, int32 quantities,
``CustomerAWSAccountId`` / ``LicenseArn`` patterns) exactly as it would be before leaving
for AWS.

moto 5.2.5's meteringmarketplace knows only ``CustomerIdentifier`` (a record with
``CustomerAWSAccountId`` fails there) and never answers ``UnprocessedRecords`` or
throttling, so it cannot test this export. What the fake models, as AWS documents it:

* a record is identified by customer (account + licence), dimension and hour: the same
  record again is a ``Success`` (idempotent), a different quantity for the same hour is
  ``DuplicateRecord`` and not honoured;
* customers not in :attr:`subscribed` (when given) are ``CustomerNotSubscribed``;
* seeded faults: a share of calls answered ``ThrottlingException`` (nothing stored), a
  share of records returned in ``UnprocessedRecords`` (not stored), a share of calls stored
  and then lost (a read timeout: the caller cannot know).

Not modelled (docs/billing.md): the 6-hour / 24-hour acceptance windows, licence
validity, entitlement checks, allocations/tags.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from botocore.awsrequest import AWSResponse

EVENT: Final = "before-call.marketplace-metering.BatchMeterUsage"


@dataclass
class MarketplaceFake:
    seed: int = 0
    throttle: float = 0.0  # share of calls refused with ThrottlingException
    unprocessed: float = 0.0  # share of records left unprocessed
    lost: float = 0.0  # share of calls stored, then answered with a timeout
    subscribed: set[tuple[str, str]] | None = None  # (account, licence); None: everyone
    records: dict[tuple[str, str, str, int], int] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def attach(self, client: Any) -> Any:
        """Answer ``client``'s ``BatchMeterUsage`` calls from now on; returns the client."""
        client.meta.events.register_first(EVENT, self._answer)
        return client

    def totals(self) -> dict[tuple[str, str], int]:
        """Quantity per (account, dimension): what Marketplace would bill."""
        out: dict[tuple[str, str], int] = defaultdict(int)
        with self._lock:
            for (account, _licence, dimension, _hour), quantity in self.records.items():
                out[(account, dimension)] += quantity
        return dict(out)

    def _answer(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        from botocore.exceptions import ReadTimeoutError

        body = json.loads(params["body"])
        with self._lock:
            self.calls["calls"] += 1
            if self._rng.random() < self.throttle:
                self.calls["throttled"] += 1
                return _error(400, "ThrottlingException", "Rate exceeded")
            results, unprocessed = [], []
            for raw in body["UsageRecords"]:
                record = _parsed(raw)
                if self._rng.random() < self.unprocessed:
                    unprocessed.append(record)
                    continue
                account = raw.get("CustomerAWSAccountId", raw.get("CustomerIdentifier", ""))
                licence = raw.get("LicenseArn", "")
                hour = int(float(raw["Timestamp"])) // 3600 * 3600
                key = (account, licence, raw["Dimension"], hour)
                quantity = int(raw.get("Quantity", 0))
                if self.subscribed is not None and (account, licence) not in self.subscribed:
                    status = "CustomerNotSubscribed"
                elif key in self.records and self.records[key] != quantity:
                    status = "DuplicateRecord"
                else:
                    self.records[key] = quantity
                    status = "Success"
                self.calls[status] += 1
                results.append(
                    {
                        "UsageRecord": record,
                        "MeteringRecordId": f"{abs(hash(key)) % 10**12:012d}",
                        "Status": status,
                    }
                )
            if self._rng.random() < self.lost:
                self.calls["lost"] += 1
                raise ReadTimeoutError(endpoint_url="https://metering.marketplace.fake")
        response = {
            "Results": results,
            "UnprocessedRecords": unprocessed,
            "ResponseMetadata": {"HTTPStatusCode": 200},
        }
        return AWSResponse("https://metering.marketplace.fake", 200, {}, None), response


def _parsed(raw: dict[str, Any]) -> dict[str, Any]:
    """A record of the request as botocore parses it in an answer (Timestamp a datetime)."""
    record = dict(raw)
    record["Timestamp"] = datetime.fromtimestamp(float(raw["Timestamp"]), UTC)
    return record


def _error(status: int, code: str, message: str) -> tuple[AWSResponse, dict[str, Any]]:
    parsed = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return AWSResponse("https://metering.marketplace.fake", status, {}, None), parsed
