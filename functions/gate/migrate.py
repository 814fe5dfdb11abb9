"""Move a 0.1.0 deployment's gate state into the gate table (``tollgate migrate``).

0.1.0 kept the gate on the tenant item: ``gate`` (key id -> entry: ``s`` status, ``w``/``c``
minute window and count, ``n``/``g`` serial and grace, ``p`` parent, ``b``/``u`` budget) and
the monthly counters ``mo``, ``mreq``, ``mtok``. For each tenant this writes, in order:

1. the live counter shards (the plan's copies, and this month's counters from ``mreq`` /
   ``mtok``; 0.1.0 counted test keys with live ones, so all of it stays on live: counted
   over, never under) and the test shards;
2. one key item per entry, parents before children, each a ``PutItem`` only if absent (a
   key item the new code has written since is never overwritten); a child of a parent that
   is not active carries that status (``ps``);
3. then removes ``gate``, ``mo``, ``mreq``, ``mtok`` from the tenant item, conditional on
   ``gate`` being what was read.

Every step is idempotent, so an interrupted run is resumed by running it again; a tenant
whose item has no ``gate`` left is done. ``dry_run`` reads and reports, writing nothing.
Until a tenant is migrated, its requests are refused 503 (``GatePending``: fail closed,
retry), never admitted without their counters.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from functions.common import ddb
from functions.gate import admin
from functions.gate import items as it
from functions.gate.store import ConditionFailed, call

LEGACY = ("gate", "mo", "mreq", "mtok")


@dataclass
class Report:
    dry_run: bool
    tenants: int = 0
    migrated: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    keys_written: int = 0
    keys_present: int = 0
    shards_written: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run, "tenants": self.tenants, "migrated": self.migrated,
            "already_migrated": self.already, "keys_written": self.keys_written,
            "keys_present": self.keys_present, "shards_written": self.shards_written,
        }  # fmt: skip


def _tenants(table: str) -> Iterator[dict[str, Any]]:
    request: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        resp = call("scan", **request)
        for raw in resp.get("Items", []):
            yield ddb.item_from_ddb(raw)
        if not resp.get("LastEvaluatedKey"):
            return
        request["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def _n(value: Any) -> dict[str, str]:
    return {"N": str(int(value))}


def key_item_of(
    tenant_id: str,
    key_id: str,
    entry: dict[str, Any],
    parent_status: str | None,
    expires_at: int | None,
    allow_cidrs: list[str] | None = None,
    requests_per_minute: int | None = None,
) -> dict[str, Any]:
    """The key item a 0.1.0 gate entry becomes (pure). ``allow_cidrs`` and
    ``requests_per_minute``: the key's networks and per-key limit from its ``Key`` record
    (keyattrs), kept on the item the authorizer enforces them from."""
    parent = entry.get("p") or None
    item: dict[str, Any] = {
        **it.key_address(key_id, parent),
        it.STATUS: {"S": str(entry.get("s") or it.REVOKED)},
        it.WINDOW: _n(entry.get("w") or 0),
        it.COUNT: _n(entry.get("c") or 0),
        it.SERIAL: _n(entry.get("n") or 1),
        it.GRACE: _n(entry.get("g") or 0),
        it.TENANT: {"S": tenant_id},
    }  # fmt: skip
    if entry.get("b") is not None:
        item[it.BUDGET], item[it.USED] = _n(entry["b"]), _n(entry.get("u") or 0)
    if parent and parent_status and parent_status != it.ACTIVE:
        item[it.PARENT_STATUS] = {"S": parent_status}
    if expires_at is not None:
        item[it.EXPIRES] = _n(expires_at)
    if allow_cidrs:
        item[it.ALLOW_CIDRS] = {"L": [{"S": str(c)} for c in allow_cidrs]}
    if requests_per_minute is not None:
        item[it.KEY_RPM] = _n(requests_per_minute)
    return item


def migrate(
    *,
    tenants_table: str,
    plans_table: str,
    keys_table: str,
    gate_table: str,
    dry_run: bool = False,
    progress: Callable[[str], None] = lambda _: None,
) -> Report:
    report = Report(dry_run=dry_run)
    for tenant in _tenants(tenants_table):
        report.tenants += 1
        tenant_id = str(tenant["tenant_id"])
        if not any(name in tenant for name in LEGACY):
            report.already.append(tenant_id)
            continue
        _migrate_tenant(tenant, tenants_table, plans_table, keys_table, gate_table, report)
        report.migrated.append(tenant_id)
        progress(f"{'would migrate' if dry_run else 'migrated'} tenant {tenant_id}")
    return report


def _plan(plans_table: str, name: str) -> dict[str, Any]:
    resp = call("get_item", TableName=plans_table, Key={"name": {"S": name}}, ConsistentRead=True)
    return ddb.item_from_ddb(resp["Item"]) if "Item" in resp else {}


def _record(keys_table: str, key_id: str) -> dict[str, Any]:
    """What the key's ``Key`` record adds to its item: expiry, networks, per-key limit."""
    resp = call(
        "get_item", TableName=keys_table, Key={"key_id": {"S": key_id}}, ConsistentRead=True
    )
    record = ddb.item_from_ddb(resp.get("Item") or {})
    value, rpm = record.get("expires_at"), record.get("requests_per_minute")
    return {
        "expires_at": None if value is None else int(value),
        "allow_cidrs": [str(c) for c in record.get("allow_cidrs") or []] or None,
        "requests_per_minute": None if rpm is None else int(rpm),
    }


def _limit(value: Any) -> int | None:
    return None if value is None else int(value)


def _migrate_tenant(
    tenant: dict[str, Any],
    tenants_table: str,
    plans_table: str,
    keys_table: str,
    gate_table: str,
    report: Report,
) -> None:
    tenant_id = str(tenant["tenant_id"])
    plan = _plan(plans_table, str(tenant.get("plan") or ""))
    config = admin.TenantConfig(
        plan=str(tenant.get("plan") or ""),
        status=str(tenant.get("status") or it.ACTIVE),
        scopes=tuple(sorted(str(s) for s in tenant.get("plan_scopes") or [])),
        rpm=_limit(tenant.get("lim_rpm")),
        shards=max(1, int(plan.get("counter_shards") or 1)),
        live=admin.EnvLimits(_limit(tenant.get("lim_rmo")), _limit(tenant.get("lim_tmo"))),
        test=admin.EnvLimits(
            _limit(plan.get("test_requests_per_month")), _limit(plan.get("test_tokens_per_month"))
        ),
    )
    existing = admin.read_shards(gate_table, tenant_id, "live", 1)
    if not existing:
        report.shards_written += 2 * config.shards
        if not report.dry_run and tenant.get("mo"):
            # this month's counters first (the shard then gets its allocation on top of them)
            shard = {
                **it.shard_address(tenant_id, "live", 0),
                it.MONTH: {"S": str(tenant["mo"])},
                it.REQUESTS: _n(tenant.get("mreq") or 0),
                it.TOKENS: _n(tenant.get("mtok") or 0),
                it.INDEX: _n(0),
                it.SHARDS: _n(config.shards),
                it.TENANT_STATUS: {"S": config.status},
            }
            with contextlib.suppress(ConditionFailed):  # written by an earlier run
                call("put_item", TableName=gate_table, Item=shard,
                     ConditionExpression="attribute_not_exists(pk)")  # fmt: skip
    if not report.dry_run:
        admin.configure(gate_table, tenant_id, config)
    entries: dict[str, dict[str, Any]] = dict(tenant.get("gate") or {})
    ordered = sorted(entries, key=lambda k: (bool(entries[k].get("p")), k))  # parents first
    for key_id in ordered:
        entry = entries[key_id]
        parent = entry.get("p") or None
        parent_status = str((entries.get(parent) or {}).get("s") or it.REVOKED) if parent else None
        item = key_item_of(tenant_id, key_id, entry, parent_status, **_record(keys_table, key_id))
        if report.dry_run:
            report.keys_written += 1
            continue
        try:
            call("put_item", TableName=gate_table, Item=item,
                 ConditionExpression="attribute_not_exists(pk)")  # fmt: skip
            report.keys_written += 1
        except ConditionFailed:
            report.keys_present += 1
    if report.dry_run:
        return
    names = {f"#{n}": n for n in LEGACY}
    condition = "attribute_not_exists(#gate)"
    values: dict[str, Any] = {}
    if "gate" in tenant:
        condition = "#gate = :gate"
        values[":gate"] = ddb.to_ddb(tenant["gate"])
    request: dict[str, Any] = {
        "TableName": tenants_table,
        "Key": {"tenant_id": {"S": tenant_id}},
        "UpdateExpression": "REMOVE " + ", ".join(names),
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
    }
    if values:
        request["ExpressionAttributeValues"] = values
    try:
        call("update_item", **request)
    except ConditionFailed:
        raise MigrationConflict(
            f"tenant {tenant_id}'s 0.1.0 gate changed while migrating (is 0.1.0 code still "
            "serving?); run migrate again"
        ) from None


class MigrationConflict(Exception):
    """The 0.1.0 state moved under the migration: nothing is lost, run it again."""
