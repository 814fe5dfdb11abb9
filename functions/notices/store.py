"""The notices table: one ``webhook`` item per tenant and one item per notice.

Attributes of a notice item (``sk`` = ``notice#<YYYY-MM>#<metric>#<pct>``)::

    id, type, tenant_id, period, metric, threshold_pct, used, limit, created_at  -- the event
    status            pending | delivered | failed
    attempts          POSTs made, over every delivery round
    last_error        why the last round failed ("HTTP 500", "timed out after 5s", ...)
    delivered_at      when a POST was answered 2xx
    redrives          how many times an operator sent it again (tollgate tenants redrive-notices)

The notice is written once, by a conditional put (:meth:`NoticeStore.put_notice`): that put
is the one decision that the notice exists, so it is emitted exactly once per tenant,
metric, threshold and period whatever the retries, replays and concurrent writers. Its
INSERT on the table's stream is what hands it to delivery (an outbox: no step between
"decided" and "queued" can be lost). A redrive sets ``status`` back to ``pending``, a MODIFY
the delivery stream's filter lets through.

The ``webhook`` item holds ``url`` and ``secret``. The secret must be readable by the
delivery function (it computes the HMAC), so it cannot be a hash: it is kept in this table,
which is encrypted at rest with the stack's customer managed KMS key like every table
(infra/tables.py), readable only by the delivery function's role and operators; it is
never logged, never put in an event, and the stream filter keeps the webhook item out of
the delivery function's events (docs/billing.md says why not Secrets Manager).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from functions.common import ddb
from functions.notices.thresholds import EVENT_TYPE, NOTICE_PREFIX, Crossing

WEBHOOK_SK: Final = "webhook"
PENDING: Final = "pending"
DELIVERED: Final = "delivered"
FAILED: Final = "failed"
EVENT_FIELDS: Final = (
    "id", "type", "tenant_id", "metric", "threshold_pct", "period", "used", "limit", "created_at",
)  # fmt: skip


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class NoticeStore:
    """Data access of the notices table (low-level botocore: light to import)."""

    def __init__(self, table: str, client: Callable[[], Any] = ddb.client) -> None:
        self.table = table
        self._client = client

    # -- webhooks --------------------------------------------------------------------------

    def put_webhook(self, tenant_id: str, *, url: str, secret: str) -> dict[str, Any]:
        """Register (or replace: a new secret) the tenant's webhook."""
        now = now_iso()
        item = {"tenant_id": tenant_id, "sk": WEBHOOK_SK, "url": url, "secret": secret,
                "updated_at": now}  # fmt: skip
        self._client().put_item(
            TableName=self.table, Item={k: ddb.to_ddb(v) for k, v in item.items()}
        )
        return {"tenant_id": tenant_id, "url": url, "updated_at": now}

    def get_webhook(self, tenant_id: str) -> dict[str, Any] | None:
        """``{"url", "secret", ...}`` or None (consistent read: a registration counts at once)."""
        return self._get(tenant_id, WEBHOOK_SK)

    # -- notices ---------------------------------------------------------------------------

    def put_notice(self, crossing: Crossing) -> bool:
        """Write the notice if it does not exist; True if this call wrote it (the emitter)."""
        from botocore.exceptions import ClientError

        item = {
            "tenant_id": crossing.tenant_id,
            "sk": crossing.sk,
            "id": crossing.id,
            "type": EVENT_TYPE,
            "metric": crossing.metric,
            "threshold_pct": crossing.threshold_pct,
            "period": crossing.period,
            "used": crossing.used,
            "limit": crossing.limit,
            "created_at": now_iso(),
            "status": PENDING,
            "attempts": 0,
            "redrives": 0,
        }
        try:
            self._client().put_item(
                TableName=self.table,
                Item={k: ddb.to_ddb(v) for k, v in item.items()},
                ConditionExpression="attribute_not_exists(sk)",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def get_notice(self, tenant_id: str, sk: str) -> dict[str, Any] | None:
        return self._get(tenant_id, sk)

    def finish(
        self,
        tenant_id: str,
        sk: str,
        *,
        status: str,
        attempts: int,
        redrives: int,
        error: str | None = None,
    ) -> bool:
        """Record a delivery round's outcome, if the notice is still the pending round this
        delivery started from (same ``redrives``); False if another round owns it now."""
        from botocore.exceptions import ClientError

        names = {"#st": "status", "#at": "attempts", "#rd": "redrives"}
        values: dict[str, Any] = {
            ":st": {"S": status}, ":n": {"N": str(attempts)}, ":pending": {"S": PENDING},
            ":rd": {"N": str(redrives)},
        }  # fmt: skip
        sets = ["#st = :st", "#at = #at + :n"]
        if status == DELIVERED:
            names["#da"] = "delivered_at"
            values[":da"] = {"S": now_iso()}
            sets.append("#da = :da")
            remove = " REMOVE last_error"
        else:
            names["#le"] = "last_error"
            values[":le"] = {"S": (error or "failed")[:300]}
            sets.append("#le = :le")
            remove = ""
        try:
            self._client().update_item(
                TableName=self.table,
                Key={"tenant_id": {"S": tenant_id}, "sk": {"S": sk}},
                UpdateExpression="SET " + ", ".join(sets) + remove,
                ConditionExpression="#st = :pending AND #rd = :rd",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def list_notices(self, tenant_id: str) -> list[dict[str, Any]]:
        """Every notice of the tenant, oldest period first (one partition: a few per month)."""
        rows: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "tenant_id = :t AND begins_with(sk, :p)",
            "ExpressionAttributeValues": {":t": {"S": tenant_id}, ":p": {"S": NOTICE_PREFIX}},
            "ConsistentRead": True,
        }
        while True:
            page = self._client().query(**kwargs)
            rows += [ddb.item_from_ddb(i) for i in page.get("Items", [])]
            if not page.get("LastEvaluatedKey"):
                return rows
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def redrive(self, tenant_id: str, sk: str) -> bool:
        """Send a failed notice again: back to ``pending`` (the stream hands it to delivery);
        False unless it was ``failed``."""
        from botocore.exceptions import ClientError

        try:
            self._client().update_item(
                TableName=self.table,
                Key={"tenant_id": {"S": tenant_id}, "sk": {"S": sk}},
                UpdateExpression="SET #st = :pending, #rd = #rd + :one",
                ConditionExpression="#st = :failed",
                ExpressionAttributeNames={"#st": "status", "#rd": "redrives"},
                ExpressionAttributeValues={
                    ":pending": {"S": PENDING},
                    ":failed": {"S": FAILED},
                    ":one": {"N": "1"},
                },
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _get(self, tenant_id: str, sk: str) -> dict[str, Any] | None:
        found = self._client().get_item(
            TableName=self.table,
            Key={"tenant_id": {"S": tenant_id}, "sk": {"S": sk}},
            ConsistentRead=True,
        )
        item = found.get("Item")
        return ddb.item_from_ddb(item) if item else None


def event_of(notice: dict[str, Any]) -> dict[str, Any]:
    """The event a receiver gets: the notice's event fields, nothing of its delivery state."""
    return {name: notice.get(name) for name in EVENT_FIELDS}
