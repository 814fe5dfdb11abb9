"""Where meters go: Stripe Billing meter events, AWS Marketplace ``BatchMeterUsage``.

A sink sends a tenant's meters and says, per meter identifier, what became of it:

* ``delivered``: the destination holds it (accepted now, or it had it already: Stripe's
  duplicate-identifier refusal, Marketplace's success for an identical record);
* ``rejected``: the destination said it did not store it (bad customer, out of bounds):
  safe to plan again later, with the quantity of that time;
* ``retry``: unknown (a timeout, a 5xx, throttling that outlasted the retries): the meter
  may or may not be stored, so it stays pending and is re-sent *verbatim* (same identifier
  and quantity) on the next run.

No secret is ever logged or put into a result: Stripe's errors are reduced to their code.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from functions.billing.customers import Customer
from functions.billing.logic import (
    MARKETPLACE_DIMENSIONS,
    MARKETPLACE_MAX_QUANTITY,
    STRIPE_EVENT_NAMES,
    Meter,
    hour_start,
)

DELIVERED: Final = "delivered"
REJECTED: Final = "rejected"
RETRY: Final = "retry"

# What Stripe answers for an identifier it already holds: HTTP 400 invalid_request_error,
# "An event already exists with identifier ...", stripe-should-retry: false (reported by
# users of the API; the code is our fake's, not verified against Stripe: docs/billing.md).
STRIPE_DUPLICATE_CODE: Final = "duplicate_meter_event"
STRIPE_DUPLICATE_MESSAGE: Final = "An event already exists with identifier"


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: str  # delivered | rejected | retry
    code: str  # sent | duplicate | the destination's error code

    @property
    def delivered(self) -> bool:
        return self.kind == DELIVERED


class DestinationUnauthorized(RuntimeError):
    """The destination refused our credentials: nothing was stored, and nothing else would
    be; the run stops (what was written ahead stays pending and is re-sent next run)."""


class Sink(Protocol):
    destination: str

    def send(self, customer: Customer, meters: Sequence[Meter]) -> dict[str, Outcome]:
        """Outcome per ``meter.identifier``."""
        ...


# -- Stripe ------------------------------------------------------------------------------


class StripeSink:
    """Stripe Billing meter events through the official SDK (``stripe.StripeClient``).

    One ``POST /v1/billing/meter_events`` per meter: ``event_name`` per metric
    (``logic.STRIPE_EVENT_NAMES``), ``payload`` = ``stripe_customer_id`` + ``value``,
    the deterministic ``identifier`` and the hour's start as ``timestamp``. The SDK
    retries connection errors and 5xx itself (``max_network_retries``, with an
    ``Idempotency-Key``); ``workers`` meters are in flight at once.
    """

    destination = "stripe"

    def __init__(
        self,
        api_key: str,
        api_base: str | None = None,
        *,
        max_network_retries: int = 2,
        workers: int = 8,
    ) -> None:
        import stripe

        self._stripe = stripe
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=max_network_retries,
        )
        self._workers = workers

    def _one(self, customer_id: str, meter: Meter) -> Outcome:
        stripe = self._stripe
        params: Any = {
            "event_name": STRIPE_EVENT_NAMES[meter.metric],
            "payload": {"stripe_customer_id": customer_id, "value": str(meter.value)},
            "identifier": meter.identifier,
            "timestamp": hour_start(meter.hour),
        }
        try:
            self._client.v1.billing.meter_events.create(params)
        except stripe.InvalidRequestError as exc:
            message = str(getattr(exc, "user_message", None) or exc)
            if exc.code == STRIPE_DUPLICATE_CODE or STRIPE_DUPLICATE_MESSAGE in message:
                return Outcome(DELIVERED, "duplicate")
            return Outcome(REJECTED, exc.code or "invalid_request_error")
        except (stripe.AuthenticationError, stripe.PermissionError):
            raise DestinationUnauthorized(
                "Stripe refused the API key (check the key, or its meter event permission)"
            ) from None
        except stripe.StripeError as exc:  # connection, 5xx, rate limit: maybe stored
            return Outcome(RETRY, exc.code or type(exc).__name__)
        return Outcome(DELIVERED, "sent")

    def send(self, customer: Customer, meters: Sequence[Meter]) -> dict[str, Outcome]:
        customer_id = customer.stripe_customer_id
        if customer_id is None:
            return {m.identifier: Outcome(REJECTED, "not_mapped") for m in meters}
        if len(meters) <= 1 or self._workers <= 1:
            return {m.identifier: self._one(customer_id, m) for m in meters}
        with ThreadPoolExecutor(max_workers=min(self._workers, len(meters))) as pool:
            outcomes = list(pool.map(lambda m: self._one(customer_id, m), meters))
        return {m.identifier: o for m, o in zip(meters, outcomes, strict=True)}


# -- AWS Marketplace ----------------------------------------------------------------------

BATCH_MAX: Final = 25  # BatchMeterUsage's limit (botocore model: UsageRecords max 25)
_PERMANENT_STATUSES: Final = frozenset({"CustomerNotSubscribed", "DuplicateRecord"})
_TRANSIENT_ERRORS: Final = frozenset(
    {"ThrottlingException", "InternalServiceErrorException", "ServiceUnavailable"}
)


def marketplace_client() -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "meteringmarketplace", config=Config(retries={"max_attempts": 5, "mode": "adaptive"})
    )


class MarketplaceSink:
    """AWS Marketplace ``BatchMeterUsage``: one record per customer, dimension and hour,
    at most 25 per call, identified by ``CustomerAWSAccountId`` + ``LicenseArn``.

    Marketplace deduplicates by customer, dimension and hour itself: an identical record sent
    again is a success, a different quantity for the same hour is ``DuplicateRecord`` (not
    honoured). ``UnprocessedRecords`` and throttling are retried here with backoff
    (``attempts``; botocore's adaptive retries come first); what is still unprocessed
    stays pending for the next run.
    """

    destination = "aws-marketplace"

    def __init__(
        self,
        client: Any | None = None,
        *,
        product_code: str | None = None,
        attempts: int = 5,
        backoff_s: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._product_code = product_code
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._sleep = sleep
        self.calls = 0  # BatchMeterUsage calls made (the bench reads it)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = marketplace_client()
        return self._client

    @staticmethod
    def record(customer: Customer, meter: Meter) -> dict[str, Any]:
        return {
            "Timestamp": datetime.fromtimestamp(hour_start(meter.hour), UTC),
            "CustomerAWSAccountId": customer.marketplace_account_id,
            "LicenseArn": customer.marketplace_license_arn,
            "Dimension": MARKETPLACE_DIMENSIONS[meter.metric],
            "Quantity": meter.value,
        }

    @staticmethod
    def _key(record: dict[str, Any]) -> tuple[str, str, int]:
        stamp = record["Timestamp"]
        epoch = int(stamp.timestamp()) if isinstance(stamp, datetime) else int(stamp)
        return str(record.get("CustomerAWSAccountId")), str(record["Dimension"]), epoch

    def send(self, customer: Customer, meters: Sequence[Meter]) -> dict[str, Outcome]:
        out: dict[str, Outcome] = {}
        if customer.marketplace_account_id is None:
            return {m.identifier: Outcome(REJECTED, "not_mapped") for m in meters}
        sendable = []
        for m in meters:
            if m.value > MARKETPLACE_MAX_QUANTITY:
                out[m.identifier] = Outcome(REJECTED, "quantity_too_large")
            else:
                sendable.append(m)
        for i in range(0, len(sendable), BATCH_MAX):
            out.update(self._batch(customer, sendable[i : i + BATCH_MAX]))
        return out

    def _batch(self, customer: Customer, meters: Sequence[Meter]) -> dict[str, Outcome]:
        from botocore.exceptions import BotoCoreError, ClientError

        by_key = {self._key(self.record(customer, m)): m for m in meters}
        out: dict[str, Outcome] = {}
        todo = [self.record(customer, m) for m in meters]
        for attempt in range(self._attempts):
            if not todo:
                break
            if attempt:
                self._sleep(self._backoff_s * 2 ** (attempt - 1))
            request: dict[str, Any] = {"UsageRecords": todo}
            if self._product_code:
                request["ProductCode"] = self._product_code
            self.calls += 1
            try:
                response = self.client.batch_meter_usage(**request)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "ClientError")
                if code in ("AccessDeniedException", "UnrecognizedClientException"):
                    raise DestinationUnauthorized(
                        f"AWS Marketplace refused the call ({code})"
                    ) from None
                if code in _TRANSIENT_ERRORS:
                    continue  # every record of the call: send again (idempotent)
                for record in todo:
                    out[by_key[self._key(record)].identifier] = Outcome(REJECTED, code)
                return out
            except BotoCoreError as exc:  # a timeout, a lost connection: maybe applied
                for record in todo:
                    out[by_key[self._key(record)].identifier] = Outcome(RETRY, type(exc).__name__)
                return out
            for result in response.get("Results", []):
                meter = by_key.get(self._key(result["UsageRecord"]))
                if meter is None:
                    continue
                status = result.get("Status", "")
                if status == "Success":
                    out[meter.identifier] = Outcome(DELIVERED, "sent")
                elif status in _PERMANENT_STATUSES:
                    out[meter.identifier] = Outcome(REJECTED, status)
                else:
                    out[meter.identifier] = Outcome(RETRY, status or "unknown")
            todo = list(response.get("UnprocessedRecords", []))
        for record in todo:  # still unprocessed, or throttled throughout
            out[by_key[self._key(record)].identifier] = Outcome(RETRY, "unprocessed")
        for m in meters:  # a record the answer never mentioned: unknown
            out.setdefault(m.identifier, Outcome(RETRY, "no_result"))
        return out
