"""Data access of the gate: the writes that admit a request, borrow allocation between
shards, and give counts back. botocore directly (the hot path's cold start: docs/design.md).

Round trips of an authorization in the steady state: **2** (the key write, then the shard
write), and 3 on a key's first request in a container (the ``Secret`` read) or on a tenant's
first request in a container (a read of one shard: the plan's per-key limit and the shard
count). A minute rollover is folded into the key write; a month rollover, a borrow between
shards or a plan change costs a few more, once.
"""

from __future__ import annotations

import contextlib
import random
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from functions.common import ddb
from functions.common.routes import Route
from functions.gate import admission as ad
from functions.gate import decisions as d
from functions.gate import items as it
from functions.gate import sources
from functions.gate.decisions import ALLOW, Decision

CACHE_SIZE: Final = 10_000
ATTEMPTS: Final = 6
_FACT_FIELDS: Final = (
    "key_id, tenant_id, environment, principal, scopes, parent_key_id, expires_at, serial, tags"
)


class DependencyError(Exception):
    """DynamoDB could not answer; the request must be refused (fail closed)."""


class GatePending(DependencyError):
    """The tenant has no counter shards: a 0.1.0 table not migrated yet (``tollgate
    migrate``). Refused as unavailable (503, retry), never as an unknown or revoked key."""


class ConditionFailed(Exception):
    def __init__(self, old: dict[str, Any] | None) -> None:
        super().__init__("condition failed")
        self.old = old


def call(
    operation: str, *, once: bool = False, client: Callable[[], Any] = ddb.client, **kwargs: Any
) -> Any:
    """One DynamoDB request. A failed condition is :class:`ConditionFailed` with the item as
    it was (when asked for); any other failure is :class:`DependencyError`. ``once``: a
    non-idempotent write, never blindly retried (``ddb.send_once``)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        if once:
            return ddb.send_once(operation, **kwargs)
        return getattr(client(), operation)(**kwargs)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "ConditionalCheckFailedException":
            old = exc.response.get("Item")
            raise ConditionFailed(ddb.item_from_ddb(old) if old else None) from None
        raise DependencyError(f"DynamoDB {operation} failed: {error.get('Code')}") from None
    except BotoCoreError as exc:
        raise DependencyError(f"DynamoDB {operation} failed: {type(exc).__name__}") from None


@dataclass(frozen=True)
class Admission:
    """An admitted request: the key and shard items as written (small, fixed size)."""

    decision: Decision
    key_item: Mapping[str, Any]
    shard_item: Mapping[str, Any]


def read_shards(table: str, tenant_id: str, environment: str, shards: int) -> list[dict[str, Any]]:
    """Every shard of a tenant environment, strongly consistent (one BatchGetItem)."""
    keys = [it.shard_address(tenant_id, environment, i) for i in range(shards)]
    found: list[dict[str, Any]] = []
    request: dict[str, Any] = {table: {"Keys": keys, "ConsistentRead": True}}
    for _ in range(5):
        resp = call("batch_get_item", RequestItems=request)
        found += [ddb.item_from_ddb(i) for i in resp.get("Responses", {}).get(table, [])]
        request = resp.get("UnprocessedKeys") or {}
        if not request:
            break
    return found


def borrow(
    table: str,
    facts: ad.Facts,
    index: int,
    view: ad.ShardView,
    counter: str,
    needed: int,
    month: str,
) -> bool:
    """Move allocation of ``counter`` from the shard with the most left to shard ``index``.

    The donor gives first (a conditional write pinned at the allocation it was read with),
    then the receiver adds: between the two the tenant's allocations add up to less than its
    limit, never more, so borrowing can refuse early but never admit over the limit. False
    when no other shard has anything left (``admission.pick_donor``: a shard with less than
    ``needed`` lends all it has, and the caller tries again).
    """  # fmt: skip
    shards = read_shards(table, facts.tenant_id, facts.environment, view.shards)
    stale = [s for s in shards if str(s.get(it.MONTH) or "") < month]
    for shard in stale:  # an idle shard still in an older month: open this month on it
        view_item = {**shard, "_tenant": facts.tenant_id, "_env": facts.environment}
        with contextlib.suppress(ConditionFailed):
            call("update_item", **ad.rollover(table, view_item, month))
    if stale:
        shards = read_shards(table, facts.tenant_id, facts.environment, view.shards)
    choice = ad.pick_donor(shards, counter, needed, month, exclude=index)
    if choice is None:
        return False
    donor, amount = choice
    try:
        call("update_item", once=True, **ad.lend(table, donor, counter, amount))
    except ConditionFailed:
        return True  # the donor moved on meanwhile: the caller tries again
    with contextlib.suppress(ConditionFailed):
        # the receiver's month rolled over: what was lent is gone with the old month
        call("update_item", once=True, **ad.receive(table, facts, index, counter, amount, month))
    return True


class GateStore:
    """The authorizer's side: cached facts and shard views, and :meth:`admit`."""

    def __init__(self, secrets_table: str, gate_table: str) -> None:
        self.secrets_table = secrets_table
        self.table = gate_table
        self._facts: OrderedDict[str, ad.Facts] = OrderedDict()
        # Guesses that save a round trip; the conditions on the items decide.
        self._minute: dict[str, int] = {}
        self._views: dict[tuple[str, str], ad.ShardView] = {}
        # keyattrs: each key's networks as its item last returned them (immutable for the
        # key's life, so a source this refused is refused again without any write)
        self._cidrs: OrderedDict[str, tuple[str, ...]] = OrderedDict()

    def facts(self, secret_hash: str) -> ad.Facts | None:
        cached = self._facts.get(secret_hash)
        if cached is not None:
            return cached
        resp = call(
            "get_item",
            TableName=self.secrets_table,
            Key={"secret_hash": {"S": secret_hash}},
            ProjectionExpression=_FACT_FIELDS,
            ConsistentRead=True,  # a key used right after creation must be found
        )
        if "Item" not in resp:
            return None
        facts = ad.Facts.from_item(ddb.item_from_ddb(resp["Item"]))
        self._facts[secret_hash] = facts
        if len(self._facts) > CACHE_SIZE:
            self._facts.popitem(last=False)
        return facts

    def _view(self, facts: ad.Facts) -> ad.ShardView:
        where = (facts.tenant_id, facts.environment)
        view = self._views.get(where)
        if view is None:
            resp = call(
                "get_item",
                TableName=self.table,
                Key=it.shard_address(facts.tenant_id, facts.environment, 0),
                ConsistentRead=True,
            )
            if "Item" not in resp:
                raise GatePending(f"no counter shards for tenant {facts.tenant_id}")
            view = ad.ShardView.of(ddb.item_from_ddb(resp["Item"]))
            self._remember(facts, view)
        return view

    def _remember(self, facts: ad.Facts, view: ad.ShardView) -> None:
        if len(self._views) > CACHE_SIZE:
            self._views.clear()
        self._views[(facts.tenant_id, facts.environment)] = view

    def admit(
        self, facts: ad.Facts, route: Route, now: float, source_ip: object = None
    ) -> Admission | Decision:
        """Check and count one request (key write, then shard write); a refusal otherwise.

        A refusal by the shard gives back what the key write counted (once: a lost answer
        leaves it counted, which can only refuse early, never admit over a limit).

        ``source_ip``: API Gateway's ``sourceIp``, checked against the key's networks (``ac``)
        as the key write returns them: no round trip of its own. A source outside them is
        refused before the shard write (the tenant's month is never counted) and the key's
        minute count is given back (one more write, on that refusal path only); once a
        container has seen a key's networks, a refused source costs no write at all.
        """
        cidrs = self._cidrs.get(facts.key_id)
        if cidrs is not None and not sources.allows(cidrs, source_ip):
            return d.SOURCE_NOT_ALLOWED
        view = self._view(facts)
        minute = it.minute_window(now)
        window = ad.KeyWindow(self._minute.get(facts.key_id) != minute, minute)
        month = max(it.month_window(now), view.month)
        key_item: dict[str, Any] | None = None
        index: int | None = None
        borrowing: ad.Borrow | None = None
        # Each borrow can be outrun by concurrent borrowers near exhaustion: a few more
        # attempts per shard before the request is refused (early, counted by the bench).
        for _ in range(ATTEMPTS + 2 * view.shards):
            if key_item is None:
                try:
                    resp = call("update_item", **ad.key_update(self.table, facts, now, view.rpm,
                                                               window))  # fmt: skip
                except ConditionFailed as failed:
                    if failed.old and not self._source_ok(facts, failed.old, source_ip):
                        return d.SOURCE_NOT_ALLOWED  # nothing was counted
                    found = ad.diagnose_key(failed.old, facts, now, view.rpm)
                    if found is None:
                        return self._missing_key(facts)
                    if isinstance(found, Decision):
                        return found
                    window = found
                    continue
                key_item = ddb.item_from_ddb(resp["Attributes"])
                window = ad.KeyWindow(False, int(key_item[it.WINDOW]))
                self._minute[facts.key_id] = window.minute
                if not self._source_ok(facts, key_item, source_ip):
                    self._give_back(facts, window.minute)
                    return d.SOURCE_NOT_ALLOWED
            if index is None or index >= view.shards:  # the same shard after a borrow
                index = random.randrange(view.shards)
            try:
                resp = call("update_item", **ad.shard_update(self.table, facts, route, index,
                                                             month, view.rpm))  # fmt: skip
            except ConditionFailed as failed:
                found_s = ad.diagnose_shard(failed.old, facts, route, now, month, view.rpm,
                                            self.table)  # fmt: skip
                if found_s is None:
                    self._give_back(facts, window.minute)
                    raise GatePending(f"no shard {index} for tenant {facts.tenant_id}") from None
                if isinstance(found_s, Decision):
                    self._give_back(facts, window.minute)
                    return found_s
                if isinstance(found_s, ad.NewRpm):
                    self._give_back(facts, window.minute)
                    view = ad.ShardView.of(failed.old or {})
                    self._remember(facts, view)
                    key_item = None
                elif isinstance(found_s, ad.Rollover):
                    with contextlib.suppress(ConditionFailed):
                        # another request opened the month first
                        call("update_item", **found_s.request)
                elif isinstance(found_s, ad.Borrow):
                    borrowing = found_s
                    if not borrow(self.table, facts, index, view, found_s.counter,
                                  found_s.needed, month):  # fmt: skip
                        self._give_back(facts, window.minute)
                        return ad.exhausted(found_s.counter, facts, now)
                else:
                    month = found_s.month
                continue
            shard_item = ddb.item_from_ddb(resp["Attributes"])
            self._remember(facts, ad.ShardView.of(shard_item))
            return Admission(ALLOW, key_item, shard_item)
        if key_item is not None:
            self._give_back(facts, window.minute)
        if borrowing is not None:  # outrun while the tenant's last allocation was shared out
            return ad.exhausted(borrowing.counter, facts, now)
        raise DependencyError("the gate kept changing under this request")

    def _source_ok(self, facts: ad.Facts, item: Mapping[str, Any], source_ip: object) -> bool:
        """Whether the key item's networks (``ac``) admit ``source_ip``; remembers them."""
        cidrs = tuple(str(c) for c in item.get(it.ALLOW_CIDRS) or ())
        self._cidrs[facts.key_id] = cidrs
        if len(self._cidrs) > CACHE_SIZE:
            self._cidrs.popitem(last=False)
        return sources.allows(cidrs, source_ip)

    def _give_back(self, facts: ad.Facts, minute: int) -> None:
        with contextlib.suppress(ConditionFailed, DependencyError):
            # left counted: an early refusal at worst, never an admission over a limit
            call("update_item", once=True, **ad.key_uncount(self.table, facts, minute))

    def _missing_key(self, facts: ad.Facts) -> Decision:
        """No key item: a key never completed (refused as revoked, as 0.1.0 did), unless
        the tenant itself has no shards yet (not migrated: unavailable, retry)."""
        self._view(facts)  # raises GatePending when the tenant has no shards
        return d.KEY_REVOKED
