"""Data access of the managed API: low-level DynamoDB calls through ``functions.common.ddb``.

Every method is one round trip. A DynamoDB failure is a :class:`ServiceUnavailable` (503,
fail closed); a failed condition is a :class:`ConditionFailed` carrying the item as it was
(when asked for with ``ReturnValuesOnConditionCheckFailure``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from functions.api.errors import ServiceUnavailable
from functions.common import ddb
from functions.common.config import TableNames


class ConditionFailed(Exception):
    def __init__(self, old: dict[str, Any] | None) -> None:
        super().__init__("condition failed")
        self.old = old


@dataclass(frozen=True)
class JobPage:
    items: list[dict[str, Any]]
    has_more: bool


class ApiStore:
    def __init__(
        self,
        tables: TableNames,
        client: Callable[[], Any] = ddb.client,
        send_once: Callable[..., Any] = ddb.send_once,
    ) -> None:
        self.tables = tables
        self._client = client
        self._send_once = send_once

    def _call(self, operation: str, *, once: bool = False, **kwargs: Any) -> Any:
        """One request; ``once``: a write that must not be applied twice (no blind retry)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            if once:
                return self._send_once(operation, **kwargs)
            return getattr(self._client(), operation)(**kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") == "ConditionalCheckFailedException":
                old = exc.response.get("Item")
                raise ConditionFailed(ddb.item_from_ddb(old) if old else None) from None
            raise ServiceUnavailable(
                f"The usage store is unavailable ({error.get('Code', 'error')})."
            ) from None
        except BotoCoreError as exc:
            raise ServiceUnavailable(
                f"The usage store is unavailable ({type(exc).__name__})."
            ) from None

    # -- plans ---------------------------------------------------------------------------
    def get_plan(self, name: str) -> dict[str, Any] | None:
        resp = self._call(
            "get_item",
            TableName=self.tables.plans,
            Key={"name": {"S": name}},
            ConsistentRead=True,
        )
        item = resp.get("Item")
        return ddb.item_from_ddb(item) if item else None

    # -- the gate's items (budgets) -----------------------------------------------------
    def update_gate(self, request: dict[str, Any], *, once: bool = False) -> None:
        """One conditional ``UpdateItem`` built by :mod:`functions.api.budget`.

        ``once`` for a settle or release (a negative ``ADD``): applied twice it would
        under-count, so it is never retried after an ambiguous failure; the caller then
        keeps the reservation counted (over-counting is the safe side).
        """
        self._call("update_item", once=once, TableName=self.tables.gate, **request)

    # -- usage events --------------------------------------------------------------------
    def put_event(self, item: dict[str, Any]) -> bool:
        """Put a usage event unless its request id is recorded already; True if written.

        ``item["delivery"]`` is unique to this delivery: when botocore retried a put that
        had been applied (a lost answer), the condition fails on our own item, which the
        returned old item shows, and the event counts as written by us, not as a duplicate.
        """
        try:
            self._call(
                "put_item",
                TableName=self.tables.usage,
                Item={k: ddb.to_ddb(v) for k, v in item.items() if v is not None},
                ConditionExpression="attribute_not_exists(request_id)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as failed:
            ours = item.get("delivery") is not None
            return ours and (failed.old or {}).get("delivery") == item["delivery"]
        return True

    # -- fine-tuning jobs ----------------------------------------------------------------
    def get_job(self, tenant_id: str, job_id: str) -> dict[str, Any] | None:
        resp = self._call(
            "get_item",
            TableName=self.tables.jobs,
            Key={"tenant_id": {"S": tenant_id}, "job_id": {"S": job_id}},
        )
        item = resp.get("Item")
        return ddb.item_from_ddb(item) if item else None

    def list_jobs(self, tenant_id: str, limit: int, after: str | None) -> JobPage:
        """The tenant's jobs, newest first (job ids sort by creation time)."""
        request: dict[str, Any] = {
            "TableName": self.tables.jobs,
            "KeyConditionExpression": "tenant_id = :t",
            "ExpressionAttributeValues": {":t": {"S": tenant_id}},
            "ScanIndexForward": False,
            "Limit": limit + 1,
        }
        if after:
            request["ExclusiveStartKey"] = {
                "tenant_id": {"S": tenant_id},
                "job_id": {"S": after},
            }
        items = [ddb.item_from_ddb(i) for i in self._call("query", **request).get("Items", [])]
        return JobPage(items[:limit], len(items) > limit)
