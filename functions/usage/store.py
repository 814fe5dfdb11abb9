"""Data access of the aggregator: one conditional ``UpdateItem`` per rollup item and batch.

Low-level botocore (``functions.common.ddb``): the mark attribute's name is the shard id,
which an ORM cannot express, and the import stays light for a stream function's cold start.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from functions.common import ddb
from functions.usage.aggregator import MARK_PREFIX, Applied, Behind, StoreUnavailable
from functions.usage.logic import MEASURES, Counters, RollupKey

CONDITION = "attribute_not_exists(#mk) OR #mk < :first"


def update_request(
    table: str,
    key: RollupKey,
    *,
    mark_attr: str,
    first: str,
    mark: str,
    counters: Counters,
    remove: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``UpdateItem`` of one item (see functions/usage/aggregator.py for the scheme)."""
    names = {"#mk": mark_attr, **{f"#{m}": m for m in MEASURES}}
    values: dict[str, Any] = {":first": {"S": first}, ":mark": {"S": mark}}
    adds = []
    for m in MEASURES:  # every measure, zeros too: every item has them all
        values[f":{m}"] = {"N": str(getattr(counters, m))}
        adds.append(f"#{m} :{m}")
    expression = "SET #mk = :mark ADD " + ", ".join(adds)
    if remove:
        for i, attr in enumerate(remove):
            names[f"#old{i}"] = attr
        expression += " REMOVE " + ", ".join(f"#old{i}" for i in range(len(remove)))
    return {
        "TableName": table,
        "Key": {"tenant_id": {"S": key.tenant_id}, "sk": {"S": key.sk}},
        "UpdateExpression": expression,
        "ConditionExpression": CONDITION,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        # The item after the write (its marks, for pruning) or, when the condition fails,
        # the item as it is (its mark for this shard): neither costs extra capacity.
        "ReturnValues": "ALL_NEW",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


def _marks(item: dict[str, Any]) -> dict[str, str]:
    return {k: v["S"] for k, v in item.items() if k.startswith(MARK_PREFIX) and "S" in v}


def _totals(item: dict[str, Any]) -> dict[str, int]:
    """The item's measures (threshold notices read a month total's; functions/notices/)."""
    return {m: int(item[m]["N"]) for m in MEASURES if "N" in item.get(m, {})}


class DynamoRollupStore:
    """:class:`functions.usage.aggregator.RollupStore` on the rollups table."""

    def __init__(self, table: str, client: Callable[[], Any] = ddb.client) -> None:
        self.table = table
        self._client = client

    def apply(
        self,
        key: RollupKey,
        *,
        mark_attr: str,
        first: str,
        mark: str,
        counters: Counters,
        remove: Sequence[str] = (),
    ) -> Applied | Behind:
        from botocore.exceptions import BotoCoreError, ClientError

        request = update_request(
            self.table,
            key,
            mark_attr=mark_attr,
            first=first,
            mark=mark,
            counters=counters,
            remove=remove,
        )
        try:
            response = self._client().update_item(**request)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") == "ConditionalCheckFailedException":
                found = (exc.response.get("Item") or {}).get(mark_attr, {}).get("S")
                if found is None:  # cannot happen with this condition; never guess
                    raise StoreUnavailable("rollups: condition failed without a mark") from None
                return Behind(mark=found, totals=_totals(exc.response.get("Item") or {}))
            raise StoreUnavailable(f"rollups: {error.get('Code', 'error')}") from None
        except BotoCoreError as exc:
            raise StoreUnavailable(f"rollups: {type(exc).__name__}") from None
        attributes = response.get("Attributes") or {}
        return Applied(marks=_marks(attributes), totals=_totals(attributes))
