"""The gate's admin writes: what the key service (CLI, responders, detector) changes.

Every write here is the enforcement point of an admin operation: the authorizer's next
request sees it. Key operations touch one key item (a cascade: one item per child, found by a
strongly consistent Query of the parent's partition); tenant operations touch the tenant's
counter shards (a few items, never one per key).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from functions.common import ddb
from functions.gate import items as it
from functions.gate.store import ConditionFailed, call, read_shards
from functions.pricing.money import usd

__all__ = ["ConditionFailed"]  # re-exported: admin callers catch it

CONFIGURE_ATTEMPTS: Final = 20


def _n(value: int) -> dict[str, str]:
    return {"N": str(int(value))}


# -- keys ------------------------------------------------------------------------------


def new_key_item(
    table: str,
    *,
    tenant_id: str,
    key_id: str,
    parent_key_id: str | None,
    token_budget: int | None,
    expires_at: int | None = None,
    allow_cidrs: list[str] | None = None,
    spend_budget_micros: int | None = None,
) -> None:
    """Write the item that makes a key usable (the last step of creating a key).

    A delegated key is created only while its parent is active, and then re-reads its parent:
    if a suspension or revocation of the parent raced with this creation, the child takes the
    parent's status (the cascade and this check see each other, whichever runs first).
    """
    item: dict[str, Any] = {
        **it.key_address(key_id, parent_key_id),
        it.STATUS: {"S": it.ACTIVE},
        it.WINDOW: _n(0),
        it.COUNT: _n(0),
        it.SERIAL: _n(1),
        it.GRACE: _n(0),
        it.TENANT: {"S": tenant_id},
    }
    if token_budget is not None:
        item[it.BUDGET], item[it.USED] = _n(token_budget), _n(0)
    if spend_budget_micros is not None:
        item[it.SPEND_BUDGET], item[it.SPENT] = _n(spend_budget_micros), _n(0)
    if expires_at is not None:
        item[it.EXPIRES] = _n(expires_at)
    if allow_cidrs:
        item[it.ALLOW_CIDRS] = {"L": [{"S": c} for c in allow_cidrs]}
    call("put_item", TableName=table, Item=item, ConditionExpression="attribute_not_exists(pk)")
    if parent_key_id:
        parent = get_key_item(table, parent_key_id, None)
        status = str((parent or {}).get(it.STATUS) or it.REVOKED)
        if status != it.ACTIVE:
            set_parent_status(table, key_id, parent_key_id, status)


def get_key_item(table: str, key_id: str, parent_key_id: str | None) -> dict[str, Any] | None:
    resp = call(
        "get_item", TableName=table, Key=it.key_address(key_id, parent_key_id), ConsistentRead=True
    )
    return ddb.item_from_ddb(resp["Item"]) if "Item" in resp else None


def set_status(
    table: str, key_id: str, parent_key_id: str | None, status: str, *, only_from: str | None
) -> bool:
    """Set a key's own status (``only_from``: only if it is that now). False if not."""
    names = {"#s": it.STATUS}
    values: dict[str, Any] = {":to": {"S": status}}
    condition = "attribute_exists(#s)"
    if only_from is not None:
        values[":from"] = {"S": only_from}
        condition += " AND #s = :from"
    try:
        call(
            "update_item",
            TableName=table,
            Key=it.key_address(key_id, parent_key_id),
            UpdateExpression="SET #s = :to",
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
    except ConditionFailed:
        return False
    return True


def set_key_rpm(table: str, key_id: str, parent_key_id: str | None, rpm: int | None) -> bool:
    """Set (or, with None, remove) a key's own per-minute limit ``kr`` (keyattrs). False if
    the key has no item or is revoked."""
    names = {"#s": it.STATUS, "#kr": it.KEY_RPM}
    values: dict[str, Any] = {":revoked": {"S": it.REVOKED}}
    if rpm is None:
        expression = "REMOVE #kr"
    else:
        expression = "SET #kr = :kr"
        values[":kr"] = _n(rpm)
    try:
        call(
            "update_item",
            TableName=table,
            Key=it.key_address(key_id, parent_key_id),
            UpdateExpression=expression,
            ConditionExpression="attribute_exists(#s) AND #s <> :revoked",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
    except ConditionFailed:
        return False
    return True


def set_parent_status(table: str, key_id: str, parent_key_id: str, status: str) -> None:
    """Record on a delegated key the status of its parent (the authorizer checks it)."""
    call(
        "update_item",
        TableName=table,
        Key=it.key_address(key_id, parent_key_id),
        UpdateExpression="SET #ps = :ps",
        ConditionExpression="attribute_exists(#s)",
        ExpressionAttributeNames={"#ps": it.PARENT_STATUS, "#s": it.STATUS},
        ExpressionAttributeValues={":ps": {"S": status}},
    )


def children(table: str, parent_key_id: str, unexpired_at: float | None = None) -> Iterator[str]:
    """The ids of every key delegated from ``parent_key_id`` (strongly consistent);
    ``unexpired_at``: only those not expired at that time."""
    request: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :c)",
        "ExpressionAttributeValues": {
            ":pk": {"S": it.children_partition(parent_key_id)},
            ":c": {"S": "c#"},
        },
        "ProjectionExpression": "sk",
        "ConsistentRead": True,
    }
    if unexpired_at is not None:
        request["FilterExpression"] = "attribute_not_exists(#x) OR #x > :now"
        request["ExpressionAttributeNames"] = {"#x": it.EXPIRES}
        request["ExpressionAttributeValues"][":now"] = _n(int(unexpired_at))
    while True:
        resp = call("query", **request)
        for item in resp.get("Items", []):
            yield item["sk"]["S"][2:]
        if not resp.get("LastEvaluatedKey"):
            return
        request["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def cascade(table: str, parent_key_id: str, status: str, now: float) -> list[str]:
    """Give every unexpired child of a parent the parent's new status (an expired child is
    refused on its expiry whatever its parent does); returns the children's ids."""
    done = []
    for child in children(table, parent_key_id, unexpired_at=now):
        try:
            set_parent_status(table, child, parent_key_id, status)
        except ConditionFailed:
            continue
        done.append(child)
    return done


def rotate(
    table: str, key_id: str, parent_key_id: str | None, serial: int, grace_until: int
) -> bool:
    """Make serial ``serial + 1`` current, ``serial`` valid until ``grace_until``."""
    try:
        call(
            "update_item",
            TableName=table,
            Key=it.key_address(key_id, parent_key_id),
            UpdateExpression="SET #n = :new, #g = :grace",
            ConditionExpression="#s = :active AND #n = :serial",
            ExpressionAttributeNames={"#n": it.SERIAL, "#g": it.GRACE, "#s": it.STATUS},
            ExpressionAttributeValues={
                ":new": _n(serial + 1),
                ":grace": _n(grace_until),
                ":serial": _n(serial),
                ":active": {"S": it.ACTIVE},
            },
        )
    except ConditionFailed:
        return False
    return True


# -- tenants ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvLimits:
    """What one environment's shards enforce (None: unlimited)."""

    requests_per_month: int | None
    tokens_per_month: int | None
    spend_per_month_micros: int | None = None  # live only (docs/billing.md, "Spend budgets")


@dataclass(frozen=True)
class TenantConfig:
    """What the plan puts on a tenant's shards."""

    plan: str
    status: str
    scopes: tuple[str, ...]
    rpm: int | None
    shards: int
    live: EnvLimits
    test: EnvLimits

    def limits(self, environment: str) -> EnvLimits:
        return self.live if environment == "live" else self.test


def _distribute(total: int | None, used: list[int], shards: int) -> list[int | None]:
    """Allocations for shards that have ``used`` so far: what is left of ``total`` shared
    out on top of each shard's use, so the allocations add up to ``max(total, used)``."""
    if total is None:
        return [None] * shards
    left = max(0, total - sum(used))
    return [used[i] + it.share(left, shards, i) for i in range(shards)]


def configure(table: str, tenant_id: str, config: TenantConfig, now: float | None = None) -> None:
    """Create or update the counter shards of both environments of a tenant.

    New shards are created; the plan's copies (status, scopes, per-key limit, limits) are set
    on every shard; in the current month the allocations are recomputed from what each shard
    has used, with each write pinned to the use and allocation it was computed from, so a
    request admitted meanwhile makes it recompute (never an allocation over the limit).
    The shard count only grows (fewer shards than a tenant has are kept).
    """
    month = it.month_window(now)
    for env in it.ENVIRONMENTS:
        limits = config.limits(env)
        for _ in range(CONFIGURE_ATTEMPTS):
            existing = read_shards(table, tenant_id, env, it.MAX_SHARDS)
            shards = max(config.shards, len(existing))
            by_index = {int(s.get(it.INDEX) or 0): s for s in existing}
            current = [by_index.get(i) for i in range(shards)]
            in_month = [s is not None and s.get(it.MONTH) == month for s in current]
            used_r = [int(s.get(it.REQUESTS) or 0) if ok and s else 0
                      for s, ok in zip(current, in_month, strict=True)]  # fmt: skip
            used_t = [int(s.get(it.TOKENS) or 0) if ok and s else 0
                      for s, ok in zip(current, in_month, strict=True)]  # fmt: skip
            used_s = [int(s.get(it.SPEND) or 0) if ok and s else 0
                      for s, ok in zip(current, in_month, strict=True)]  # fmt: skip
            ra = _distribute(limits.requests_per_month, used_r, shards)
            ta = _distribute(limits.tokens_per_month, used_t, shards)
            sa = _distribute(limits.spend_per_month_micros, used_s, shards)
            try:
                for i in range(shards):
                    _write_shard(table, tenant_id, env, i, config, limits, shards, month,
                                 current[i], ra[i], ta[i], sa[i])  # fmt: skip
            except ConditionFailed:
                time.sleep(0.01)
                continue
            break
        else:
            raise ConditionFailed(None)


def _write_shard(
    table: str,
    tenant_id: str,
    env: str,
    index: int,
    config: TenantConfig,
    limits: EnvLimits,
    shards: int,
    month: str,
    old: Mapping[str, Any] | None,
    ra: int | None,
    ta: int | None,
    sa: int | None = None,
) -> None:
    names = {"#st": it.TENANT_STATUS, "#sc": it.SCOPES, "#pl": it.PLAN, "#rpm": it.RPM,
             "#rl": it.REQUEST_LIMIT, "#tl": it.TOKEN_LIMIT, "#ra": it.REQUEST_ALLOC,
             "#ta": it.TOKEN_ALLOC, "#ns": it.SHARDS, "#ix": it.INDEX, "#mo": it.MONTH,
             "#rq": it.REQUESTS, "#tk": it.TOKENS, "#sl": it.SPEND_LIMIT, "#sa": it.SPEND_ALLOC,
             "#sp": it.SPEND}  # fmt: skip
    values: dict[str, Any] = {
        ":st": {"S": config.status},
        ":sc": {"L": [{"S": s} for s in config.scopes]},
        ":pl": {"S": config.plan},
        ":ns": _n(shards),
        ":ix": _n(index),
    }
    sets = ["#st = :st", "#sc = :sc", "#pl = :pl", "#ns = :ns", "#ix = :ix"]
    removes: list[str] = []
    conditions: list[str] = []
    live = env == "live"  # spend counts live keys only (docs/billing.md, "Spend budgets")
    spend_limit = limits.spend_per_month_micros if live else None
    for name, value in (("#rpm", config.rpm), ("#rl", limits.requests_per_month),
                        ("#tl", limits.tokens_per_month), ("#sl", spend_limit)):  # fmt: skip
        if value is None:
            removes.append(name)
        else:
            values[":" + name[1:]] = _n(value)
            sets.append(f"{name} = :{name[1:]}")
    current_month = old is not None and old.get(it.MONTH) == month
    if old is None:  # a new shard opens the current month with its allocation
        values[":mo"], values[":zero"] = {"S": month}, _n(0)
        sets += ["#mo = :mo", "#rq = :zero", "#tk = :zero"]
        conditions.append("attribute_not_exists(pk)")
    else:
        conditions.append("attribute_exists(pk)")
        if old.get(it.MONTH):
            values[":mo"] = {"S": str(old[it.MONTH])}
            conditions.append("#mo = :mo")
        else:
            conditions.append("attribute_not_exists(#mo)")
    if old is None or current_month:
        counted = [("#ra", "#rq", ra, it.REQUESTS), ("#ta", "#tk", ta, it.TOKENS)]
        if live:
            counted.append(("#sa", "#sp", None if spend_limit is None else sa, it.SPEND))
        else:
            removes.append("#sa")
        for name, used_name, alloc, key in counted:
            if alloc is None:
                removes.append(name)
            else:
                values[":" + name[1:]] = _n(alloc)
                sets.append(f"{name} = :{name[1:]}")
            if old is not None and old.get(key) is not None:
                # pinned: recompute if a request was counted meanwhile
                values[":u" + name[1:]] = _n(int(old[key]))
                conditions.append(f"{used_name} = :u{name[1:]}")
            elif key == it.SPEND:  # a shard from before spend budgets: start counting
                values[":zero"] = _n(0)
                sets.append("#sp = :zero")
                if old is not None:
                    conditions.append("attribute_not_exists(#sp)")
    expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
    used = {n for n in names if n in expression or n in " ".join(conditions)}
    call(
        "update_item",
        TableName=table,
        Key=it.shard_address(tenant_id, env, index),
        UpdateExpression=expression,
        ConditionExpression=" AND ".join(conditions),
        ExpressionAttributeNames={k: v for k, v in names.items() if k in used},
        ExpressionAttributeValues=values,
    )


def shard_totals(table: str, tenant_id: str, environment: str) -> dict[str, Any]:
    """A tenant environment's counters summed over its shards (for views and checks)."""
    shards = read_shards(table, tenant_id, environment, it.MAX_SHARDS)
    months = sorted({str(s.get(it.MONTH) or "") for s in shards})
    month = months[-1] if months else ""
    current = [s for s in shards if s.get(it.MONTH) == month]
    limits = [int(s[it.SPEND_LIMIT]) for s in current if s.get(it.SPEND_LIMIT) is not None]
    spent = sum(int(s.get(it.SPEND) or 0) for s in current)
    return {
        "month": month,
        "requests": sum(int(s.get(it.REQUESTS) or 0) for s in current),
        "tokens": sum(int(s.get(it.TOKENS) or 0) for s in current),
        "spend_micros": spent,
        "spend_usd": usd(spent),
        "spend_limit_micros": limits[0] if limits else None,
        "spend_limit_usd": usd(limits[0]) if limits else None,
        "shards": len(shards),
    }
