"""Data access of the authorizer: one read of a secret's facts (cached), one conditional
update of the tenant item that checks and counts the request.

Round trips per request: 1 in the steady state (the facts are cached), 2 on a key's first
request in a container; a rollover of a minute or month window the cache did not foresee
costs one more.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final

from functions.authorizer.logic import Facts, Windows
from functions.common import ddb, gate
from functions.common.config import TableNames
from functions.common.routes import Route

_FACT_FIELDS: Final = (
    "key_id, tenant_id, environment, principal, scopes, parent_key_id, expires_at, serial"
)
CACHE_SIZE: Final = 10_000


class DependencyError(Exception):
    """DynamoDB could not answer; the request must be refused (fail closed)."""


@dataclass(frozen=True)
class Admitted:
    item: dict[str, Any]


@dataclass(frozen=True)
class Refused:
    old: dict[str, Any] | None


def _call(operation: str, **kwargs: Any) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return getattr(ddb.client(), operation)(**kwargs)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            raise
        raise DependencyError(
            f"DynamoDB {operation} failed: {exc.response['Error']['Code']}"
        ) from exc
    except BotoCoreError as exc:
        raise DependencyError(f"DynamoDB {operation} failed: {type(exc).__name__}") from exc


class GateStore:
    def __init__(self, tables: TableNames) -> None:
        self.tables = tables
        self._facts: OrderedDict[str, Facts] = OrderedDict()
        # Last windows seen per key and per tenant: only a guess that saves a round trip at
        # rollover; the condition on the item decides.
        self._minute: dict[str, int] = {}
        self._month: dict[str, str] = {}

    def facts(self, secret_hash: str) -> Facts | None:
        cached = self._facts.get(secret_hash)
        if cached is not None:
            return cached
        resp = _call(
            "get_item",
            TableName=self.tables.secrets,
            Key={"secret_hash": {"S": secret_hash}},
            ProjectionExpression=_FACT_FIELDS,
            ConsistentRead=True,  # a key used right after creation must be found
        )
        if "Item" not in resp:
            return None
        facts = Facts.from_item(ddb.item_from_ddb(resp["Item"]))
        self._facts[secret_hash] = facts
        if len(self._facts) > CACHE_SIZE:
            self._facts.popitem(last=False)
        return facts

    def guess_windows(self, facts: Facts, now: float) -> Windows:
        return Windows(
            minute_stale=self._minute.get(facts.key_id) != gate.minute_window(now),
            month_stale=self._month.get(facts.tenant_id, "") != gate.month_window(now),
        )

    def admit(self, facts: Facts, route: Route, now: float, windows: Windows) -> Admitted | Refused:
        from botocore.exceptions import ClientError

        request = build_update(self.tables.tenants, facts, route, now, windows)
        try:
            resp = _call("update_item", **request)
        except ClientError as exc:
            old = exc.response.get("Item")
            return Refused(ddb.item_from_ddb(old) if old else None)
        self._minute[facts.key_id] = gate.minute_window(now)
        self._month[facts.tenant_id] = gate.month_window(now)
        return Admitted(ddb.item_from_ddb(resp["Attributes"]))


def build_update(
    table: str, facts: Facts, route: Route, now: float, windows: Windows
) -> dict[str, Any]:
    """The one conditional UpdateItem that checks a request and counts it.

    Limits are compared with the limits stored on the item, so the authorizer never needs to
    know them; an absent limit means unlimited.
    """
    minute = gate.minute_window(now) if windows.minute is None else windows.minute
    month = gate.month_window(now) if windows.month is None else windows.month
    names = {
        "#gt": "gate", "#k": facts.key_id, "#s": gate.STATUS, "#w": gate.WINDOW,
        "#c": gate.COUNT, "#n": gate.SERIAL, "#g": gate.GRACE, "#st": "status", "#mo": "mo",
        "#mreq": "mreq", "#mtok": "mtok", "#lrpm": "lim_rpm", "#lrmo": "lim_rmo",
        "#ltmo": "lim_tmo",
    }  # fmt: skip
    values: dict[str, Any] = {
        ":active": {"S": "active"},
        ":serial": {"N": str(facts.serial)},
        ":next": {"N": str(facts.serial + 1)},
        ":now": {"N": str(int(now))},
        ":one": {"N": "1"},
        ":minute": {"N": str(minute)},
        ":month": {"S": month},
    }
    key = "#gt.#k"
    conditions = [
        "#st = :active",
        f"{key}.#s = :active",
        f"({key}.#n = :serial OR ({key}.#n = :next AND {key}.#g > :now))",
    ]
    sets = []
    if route.scope is not None:
        names["#ps"] = "plan_scopes"
        values[":scope"] = {"S": route.scope}
        conditions.append("contains(#ps, :scope)")
    if facts.parent_key_id:
        names["#p"] = facts.parent_key_id
        names["#b"], names["#u"] = gate.BUDGET, gate.USED
        conditions.append("#gt.#p.#s = :active")
        conditions.append(f"(attribute_not_exists({key}.#b) OR {key}.#u < {key}.#b)")
    if windows.minute_stale:
        conditions.append(f"{key}.#w < :minute")  # windows only move forward
        conditions.append("(attribute_not_exists(#lrpm) OR #lrpm >= :one)")
        sets += [f"{key}.#w = :minute", f"{key}.#c = :one"]
    else:
        conditions.append(f"{key}.#w = :minute")
        conditions.append(f"(attribute_not_exists(#lrpm) OR {key}.#c < #lrpm)")
        sets.append(f"{key}.#c = {key}.#c + :one")
    if windows.month_stale:
        values[":zero"] = {"N": "0"}
        conditions.append("(attribute_not_exists(#mo) OR #mo < :month)")
        conditions.append("(attribute_not_exists(#lrmo) OR #lrmo >= :one)")
        conditions.append("(attribute_not_exists(#ltmo) OR #ltmo > :zero)")
        sets += ["#mo = :month", "#mreq = :one", "#mtok = :zero"]
    else:
        conditions.append("#mo = :month")
        conditions.append("(attribute_not_exists(#lrmo) OR #mreq < #lrmo)")
        conditions.append("(attribute_not_exists(#ltmo) OR #mtok < #ltmo)")
        sets.append("#mreq = #mreq + :one")
    return {
        "TableName": table,
        "Key": {"tenant_id": {"S": facts.tenant_id}},
        "UpdateExpression": "SET " + ", ".join(sets),
        "ConditionExpression": " AND ".join(conditions),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ReturnValues": "ALL_NEW",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
