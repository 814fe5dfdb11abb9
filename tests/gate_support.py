"""Test helpers over the gate (``functions/gate/``): seed a tenant's counter shards and key
items, change them, and read a tenant back in one legacy-shaped view (``mo``, ``mreq``,
``mtok``, ``mspend`` summed over the live shards; ``gate``: key id -> key item) so that tests
assert on counters, not on the layout."""

from __future__ import annotations

from typing import Any

from functions.common.ddb import item_from_ddb, to_ddb
from functions.common.models import GateItem, Plan, Tenant
from functions.gate import admin
from functions.gate import items as it


def table() -> str:
    return str(GateItem.Meta.table_name)


def configure(tenant: Tenant, plan: Plan) -> None:
    from functions.keys.service import _gate_config

    admin.configure(table(), tenant.tenant_id, _gate_config(tenant, plan))


def set_shard(tenant_id: str, env: str = "live", index: int = 0, **fields: Any) -> None:
    import boto3

    client = boto3.client("dynamodb")
    names = {f"#a{i}": k for i, k in enumerate(fields)}
    values = {f":v{i}": to_ddb(v) for i, v in enumerate(fields.values())}
    client.update_item(
        TableName=table(),
        Key=it.shard_address(tenant_id, env, index),
        UpdateExpression="SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(fields))),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )


def new_key(
    tenant_id: str,
    key_id: str,
    parent: str | None = None,
    budget: int | None = None,
    spend_budget: int | None = None,
) -> None:
    admin.new_key_item(
        table(), tenant_id=tenant_id, key_id=key_id, parent_key_id=parent, token_budget=budget,
        spend_budget_micros=spend_budget,
    )  # fmt: skip


def parent_of(tenant_id: str, key_id: str) -> str | None:
    for item in _key_items(tenant_id):
        if item["_id"] == key_id:
            return item["_parent"]
    return None


def set_key(tenant_id: str, key_id: str, **fields: Any) -> None:
    import boto3

    parent = parent_of(tenant_id, key_id)
    names = {f"#a{i}": k for i, k in enumerate(fields)}
    values = {f":v{i}": to_ddb(v) for i, v in enumerate(fields.values())}
    boto3.client("dynamodb").update_item(
        TableName=table(),
        Key=it.key_address(key_id, parent),
        UpdateExpression="SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(fields))),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )


def _key_items(tenant_id: str) -> list[dict[str, Any]]:
    import boto3

    client = boto3.client("dynamodb")
    found: list[dict[str, Any]] = []
    request: dict[str, Any] = {
        "TableName": table(),
        "FilterExpression": "#tn = :t",
        "ExpressionAttributeNames": {"#tn": it.TENANT},
        "ExpressionAttributeValues": {":t": {"S": tenant_id}},
        "ConsistentRead": True,
    }
    while True:
        resp = client.scan(**request)
        for raw in resp.get("Items", []):
            item = item_from_ddb(raw)
            pk, sk = str(item["pk"]), str(item["sk"])
            if sk == "k":
                item["_id"], item["_parent"] = pk[2:], None
            else:
                item["_id"], item["_parent"] = sk[2:], pk[2:]
                item["p"] = pk[2:]
            found.append(item)
        if not resp.get("LastEvaluatedKey"):
            return found
        request["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def view(tenant_id: str, env: str = "live") -> dict[str, Any]:
    """The tenant with its counters (summed over ``env``'s shards) and its key items."""
    t = Tenant.get(tenant_id, consistent_read=True)
    totals = admin.shard_totals(table(), tenant_id, env)
    shards = admin.read_shards(table(), tenant_id, env, it.MAX_SHARDS)
    return {
        "tenant_id": tenant_id,
        "status": t.status,
        "plan": t.plan,
        "lim_rpm": t.lim_rpm,
        "lim_rmo": t.lim_rmo,
        "lim_tmo": t.lim_tmo,
        "mo": totals["month"],
        "mreq": totals["requests"],
        "mtok": totals["tokens"],
        "mspend": totals["spend_micros"],  # micro-dollars spent or reserved (live only)
        "spend_limit": totals["spend_limit_micros"],
        "shards": shards,
        "gate": {i["_id"]: i for i in _key_items(tenant_id)},
    }


def scan_markers() -> list[dict[str, Any]]:
    """Every reservation marker in the gate table (``functions/gate/reservations.py``)."""
    import boto3

    items = boto3.client("dynamodb").scan(TableName=table(), ConsistentRead=True)["Items"]
    found = [item_from_ddb(i) for i in items if it.is_marker(i["pk"]["S"])]
    return [i for i in found if i["pk"] != "r#sweep"]
