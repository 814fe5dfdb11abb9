"""The admission rule, in its two forms side by side (no I/O).

A request is admitted by two conditional ``UpdateItem`` calls, each checking and counting on
one small item (``functions/gate/items.py``):

1. **the key item** (:func:`key_update`): the key is active, its parent (if delegated) was
   active when last cascaded, the presented secret's serial is current or in its rotation
   grace, a delegated key's token and spend budgets are not spent, and the key's count in this UTC
   minute is under the per-key limit; it counts the request;
2. **a counter shard** of the tenant's environment (:func:`shard_update`): the tenant is
   active, its plan has the route's scope, the per-key limit the first write used is still
   the plan's (pinned, so a plan change is exact on the next request), and this shard's
   monthly requests, tokens and (live) spend are under its allocation; it counts the request.

DynamoDB evaluates each condition atomically per item, which keeps every counter exact under
any concurrency. When a write fails, DynamoDB returns the item as it was (``ALL_OLD``) and
:func:`diagnose_key` / :func:`diagnose_shard` tell why from it, with the same rule written
in Python: a refusal (a :class:`Decision`), or what to do before trying again (roll a
window forward, borrow allocation from another shard, refresh a changed limit). The
property test ``tests/integration/test_gate_rule_agrees.py`` checks on random items that the
two forms agree.

Windows only move forward: a request that arrives after a newer minute or month opened is
counted in the newer window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from functions.common import tags as tagrules
from functions.common.routes import Route
from functions.gate import decisions as d
from functions.gate import items as it
from functions.gate.decisions import Decision

RETURN_NEW: Final = {"ReturnValues": "ALL_NEW", "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}


@dataclass(frozen=True)
class Facts:
    """The immutable facts of a secret (its ``Secret`` item): safe to cache."""

    key_id: str
    tenant_id: str
    environment: str
    principal: str
    scopes: frozenset[str]
    parent_key_id: str | None
    expires_at: int | None
    serial: int
    tags: str = ""  # keyattrs: the key's tags, ``k=v,k=v`` (functions/common/tags.py)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Facts:
        raw_tags = item.get("tags") or {}
        return cls(
            key_id=item["key_id"],
            tenant_id=item["tenant_id"],
            environment=item["environment"],
            principal=item["principal"],
            scopes=frozenset(item.get("scopes") or ()),
            parent_key_id=item.get("parent_key_id") or None,
            expires_at=int(item["expires_at"]) if item.get("expires_at") is not None else None,
            serial=int(item["serial"]),
            tags=tagrules.encode({str(k): str(v) for k, v in raw_tags.items()}),
        )


def _n(value: int) -> dict[str, str]:
    return {"N": str(int(value))}


def num(value: Any) -> int | None:
    return None if value is None else int(value)


# -- 1. the key item ---------------------------------------------------------------------


@dataclass(frozen=True)
class KeyWindow:
    """How the next key write counts: roll the minute forward (``stale``) or add to it."""

    stale: bool
    minute: int


def key_update(
    table: str, facts: Facts, now: float, rpm: int | None, window: KeyWindow
) -> dict[str, Any]:
    """The conditional write that checks the key and counts the request in its minute.

    The per-minute limit is the key's own ``kr`` when it has one (``keys set-limit``,
    higher or lower than the plan's), else the plan's ``rpm`` (as this container last saw
    it; the shard write pins it). Both are read in the same condition, so an override is
    exact from the request after it is written.
    """
    names = {"#s": it.STATUS, "#n": it.SERIAL, "#g": it.GRACE, "#w": it.WINDOW, "#c": it.COUNT,
             "#kr": it.KEY_RPM}  # fmt: skip
    values: dict[str, Any] = {
        ":active": {"S": it.ACTIVE},
        ":serial": _n(facts.serial),
        ":next": _n(facts.serial + 1),
        ":now": _n(int(now)),
        ":one": _n(1),
        ":minute": _n(window.minute),
    }
    conditions = ["#s = :active", "(#n = :serial OR (#n = :next AND #g > :now))"]
    if facts.parent_key_id:
        names.update({"#ps": it.PARENT_STATUS, "#b": it.BUDGET, "#u": it.USED,
                      "#sb": it.SPEND_BUDGET, "#su": it.SPENT})  # fmt: skip
        conditions.append("(attribute_not_exists(#ps) OR #ps = :active)")
        conditions.append("(attribute_not_exists(#b) OR #u < #b)")
        conditions.append("(attribute_not_exists(#sb) OR #su < #sb)")
    if window.stale:
        conditions.append("#w < :minute")
        sets = "#w = :minute, #c = :one"
        # a limit of 0 admits nothing, even in a fresh minute
        if rpm is not None and rpm < 1:  # only an override of at least 1 admits
            conditions.append("#kr >= :one")
        else:
            conditions.append("(attribute_not_exists(#kr) OR #kr >= :one)")
    else:
        conditions.append("#w = :minute")
        sets = "#c = #c + :one"
        if rpm is None:
            conditions.append("(attribute_not_exists(#kr) OR #c < #kr)")
        else:
            values[":rpm"] = _n(rpm)
            conditions.append("((attribute_not_exists(#kr) AND #c < :rpm) OR #c < #kr)")
    return {
        "TableName": table,
        "Key": it.key_address(facts.key_id, facts.parent_key_id),
        "UpdateExpression": "SET " + sets,
        "ConditionExpression": " AND ".join(conditions),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        **RETURN_NEW,
    }


def key_rpm(item: Mapping[str, Any], rpm: int | None) -> int | None:
    """The per-minute limit of a key item: its own override (``kr``) or the plan's."""
    own = num(item.get(it.KEY_RPM))
    return rpm if own is None else own


def key_uncount(table: str, facts: Facts, minute: int) -> dict[str, Any]:
    """Give back a request the key item counted when the shard then refused it."""
    return {
        "TableName": table,
        "Key": it.key_address(facts.key_id, facts.parent_key_id),
        "UpdateExpression": "SET #c = #c - :one",
        "ConditionExpression": "#w = :minute AND #c >= :one",
        "ExpressionAttributeNames": {"#w": it.WINDOW, "#c": it.COUNT},
        "ExpressionAttributeValues": {":minute": _n(minute), ":one": _n(1)},
    }


def diagnose_key(
    old: Mapping[str, Any] | None, facts: Facts, now: float, rpm: int | None
) -> Decision | KeyWindow | None:
    """Why the key write failed: a refusal, the window to count in next, or None when the
    key has no item at all (never completed, or a tenant not migrated yet)."""
    if not old:
        return None
    if old.get(it.STATUS) == it.REVOKED:
        return d.KEY_REVOKED
    if old.get(it.STATUS) != it.ACTIVE:
        return d.KEY_SUSPENDED
    serial = int(old.get(it.SERIAL, 0))
    in_grace = facts.serial == serial - 1 and float(old.get(it.GRACE, 0)) > now
    if facts.serial != serial and not in_grace:
        return d.ROTATED_OUT
    if facts.parent_key_id and old.get(it.PARENT_STATUS, it.ACTIVE) != it.ACTIVE:
        return d.PARENT_INACTIVE
    budget = num(old.get(it.BUDGET)) if facts.parent_key_id else None
    if budget is not None and int(old.get(it.USED, 0)) >= budget:
        return d.tokens_exhausted(0, key_budget=True)
    spend_budget = num(old.get(it.SPEND_BUDGET)) if facts.parent_key_id else None
    if spend_budget is not None and int(old.get(it.SPENT, 0)) >= spend_budget:
        return d.spend_exhausted(0, key_budget=True)
    minute, stored = it.minute_window(now), int(old.get(it.WINDOW, 0))
    stale = stored < minute
    count = 0 if stale else int(old.get(it.COUNT, 0))
    limit = key_rpm(old, rpm)
    if limit is not None and count >= limit:
        return d.rate_limited(it.seconds_to_next_minute(now))
    return KeyWindow(stale, max(minute, stored))


# -- 2. the counter shard ----------------------------------------------------------------


@dataclass(frozen=True)
class ShardView:
    """What a container knows of a tenant environment's shards: the last shard item seen."""

    rpm: int | None
    shards: int
    month: str
    item: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, item: Mapping[str, Any]) -> ShardView:
        return cls(
            rpm=num(item.get(it.RPM)),
            shards=max(1, int(item.get(it.SHARDS) or 1)),
            month=str(item.get(it.MONTH) or ""),
            item=item,
        )


def shard_update(
    table: str, facts: Facts, route: Route, index: int, month: str, rpm: int | None
) -> dict[str, Any]:
    """The conditional write that checks the tenant and counts the request in its month."""
    names = {"#st": it.TENANT_STATUS, "#mo": it.MONTH, "#rq": it.REQUESTS, "#tk": it.TOKENS,
             "#ra": it.REQUEST_ALLOC, "#ta": it.TOKEN_ALLOC, "#rpm": it.RPM,
             "#sp": it.SPEND, "#sa": it.SPEND_ALLOC}  # fmt: skip
    values: dict[str, Any] = {":active": {"S": it.ACTIVE}, ":month": {"S": month}, ":one": _n(1)}
    conditions = [
        "#st = :active",
        "#mo = :month",
        "(attribute_not_exists(#ra) OR #rq < #ra)",
        "(attribute_not_exists(#ta) OR #tk < #ta)",
        "(attribute_not_exists(#sa) OR #sp < #sa)",
    ]
    if rpm is None:
        conditions.append("attribute_not_exists(#rpm)")
    else:
        values[":rpm"] = _n(rpm)
        conditions.append("#rpm = :rpm")
    if route.scope is not None:
        names["#sc"] = it.SCOPES
        values[":scope"] = {"S": route.scope}
        conditions.append("contains(#sc, :scope)")
    return {
        "TableName": table,
        "Key": it.shard_address(facts.tenant_id, facts.environment, index),
        "UpdateExpression": "SET #rq = #rq + :one",
        "ConditionExpression": " AND ".join(conditions),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        **RETURN_NEW,
    }


@dataclass(frozen=True)
class Rollover:
    """The shard still counts in an older month: open the new one, then try again."""

    request: dict[str, Any]


@dataclass(frozen=True)
class Borrow:
    """This shard's allocation is spent but the tenant's may not be: move some over."""

    counter: str  # items.REQUESTS, items.TOKENS or items.SPEND
    needed: int


@dataclass(frozen=True)
class NewRpm:
    """The plan's per-key limit changed since the key write: give that count back, retry."""

    rpm: int | None


@dataclass(frozen=True)
class Retry:
    """Nothing explains the failure any more (another request changed the item): retry,
    counting in ``month`` (a newer month than the request's own, when one opened)."""

    month: str


def rollover(table: str, old: Mapping[str, Any], month: str) -> dict[str, Any]:
    """Open ``month`` on a shard: counters to zero, allocations back to the shard's share
    (spend only on live shards: test keys never count against it).

    Pins the limits and shard count it computed the shares from, so a plan change in
    between makes it fail (and be recomputed) rather than write a stale share.
    """
    names = {"#mo": it.MONTH, "#rq": it.REQUESTS, "#tk": it.TOKENS, "#rl": it.REQUEST_LIMIT,
             "#tl": it.TOKEN_LIMIT, "#ra": it.REQUEST_ALLOC, "#ta": it.TOKEN_ALLOC,
             "#ns": it.SHARDS}  # fmt: skip
    shards, index = max(1, int(old.get(it.SHARDS) or 1)), int(old.get(it.INDEX) or 0)
    values: dict[str, Any] = {":month": {"S": month}, ":zero": _n(0), ":ns": _n(shards)}
    conditions = ["(attribute_not_exists(#mo) OR #mo < :month)", "#ns = :ns"]
    sets, removes = ["#mo = :month", "#rq = :zero", "#tk = :zero"], []
    pairs = [("#rl", "#ra", "r"), ("#tl", "#ta", "t")]
    if str(old.get("_env") or "live") == "live":
        names.update({"#sp": it.SPEND, "#sl": it.SPEND_LIMIT, "#sa": it.SPEND_ALLOC})
        sets.append("#sp = :zero")
        pairs.append(("#sl", "#sa", "s"))
    for limit_name, alloc_name, tag in pairs:
        limit = num(old.get(names[limit_name]))
        if limit is None:
            conditions.append(f"attribute_not_exists({limit_name})")
            removes.append(alloc_name)
        else:
            values[f":{tag}l"] = _n(limit)
            values[f":{tag}a"] = _n(it.share(limit, shards, index))
            conditions.append(f"{limit_name} = :{tag}l")
            sets.append(f"{alloc_name} = :{tag}a")
    expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
    return {
        "TableName": table,
        "Key": it.shard_address(str(old["_tenant"]), str(old["_env"]), index),
        "UpdateExpression": expression,
        "ConditionExpression": " AND ".join(conditions),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def diagnose_shard(
    old: Mapping[str, Any] | None,
    facts: Facts,
    route: Route,
    now: float,
    month: str,
    rpm: int | None,
    table: str,
) -> Decision | Rollover | Borrow | NewRpm | Retry | None:
    """Why the shard write failed (None: the shard does not exist)."""
    if not old:
        return None
    if old.get(it.TENANT_STATUS) != it.ACTIVE:
        return d.TENANT_INACTIVE
    if route.scope is not None and route.scope not in (old.get(it.SCOPES) or ()):
        return d.scope_not_in_plan(route.scope)
    if num(old.get(it.RPM)) != rpm:
        return NewRpm(num(old.get(it.RPM)))
    stored = str(old.get(it.MONTH) or "")
    if stored < month:
        view = {**old, "_tenant": facts.tenant_id, "_env": facts.environment}
        return Rollover(rollover(table, view, month))
    month = max(month, stored)
    shards = max(1, int(old.get(it.SHARDS) or 1))
    to_month_end = it.seconds_to_next_month(now)
    token_alloc = num(old.get(it.TOKEN_ALLOC))
    if token_alloc is not None and int(old.get(it.TOKENS, 0)) >= token_alloc:
        if shards > 1:
            return Borrow(it.TOKENS, 1)
        return d.tokens_exhausted(to_month_end, environment=facts.environment)
    spend_alloc = num(old.get(it.SPEND_ALLOC))
    if spend_alloc is not None and int(old.get(it.SPEND, 0)) >= spend_alloc:
        if shards > 1:
            return Borrow(it.SPEND, 1)
        return d.spend_exhausted(to_month_end, environment=facts.environment)
    request_alloc = num(old.get(it.REQUEST_ALLOC))
    if request_alloc is not None and int(old.get(it.REQUESTS, 0)) >= request_alloc:
        if shards > 1:
            return Borrow(it.REQUESTS, 1)
        return d.quota_exceeded(to_month_end, environment=facts.environment)
    return Retry(month)


def exhausted(counter: str, facts: Facts, now: float) -> Decision:
    """The refusal once no shard of the tenant has any allocation left to lend."""
    to_month_end = it.seconds_to_next_month(now)
    if counter == it.TOKENS:
        return d.tokens_exhausted(to_month_end, environment=facts.environment)
    if counter == it.SPEND:
        return d.spend_exhausted(to_month_end, environment=facts.environment)
    return d.quota_exceeded(to_month_end, environment=facts.environment)


ALLOC_OF: Final = {it.REQUESTS: it.REQUEST_ALLOC, it.TOKENS: it.TOKEN_ALLOC,
                   it.SPEND: it.SPEND_ALLOC}  # fmt: skip


def lend(table: str, donor: Mapping[str, Any], counter: str, amount: int) -> dict[str, Any]:
    """Take ``amount`` of ``counter``'s allocation from ``donor`` (pinned at what was read,
    and only while the donor's own use stays within what it keeps)."""
    alloc = ALLOC_OF[counter]
    seen = int(donor[alloc])
    return {
        "TableName": table,
        "Key": {"pk": {"S": str(donor["pk"])}, "sk": {"S": str(donor["sk"])}},
        "UpdateExpression": "SET #a = #a - :d",
        "ConditionExpression": "#mo = :month AND #a = :seen AND #c <= :keep",
        "ExpressionAttributeNames": {"#a": alloc, "#c": counter, "#mo": it.MONTH},
        "ExpressionAttributeValues": {
            ":d": _n(amount),
            ":seen": _n(seen),
            ":keep": _n(seen - amount),
            ":month": {"S": str(donor[it.MONTH])},
        },
    }


def receive(
    table: str, facts: Facts, index: int, counter: str, amount: int, month: str
) -> dict[str, Any]:
    """Add what was lent to shard ``index`` (only in the month it was lent in)."""
    return {
        "TableName": table,
        "Key": it.shard_address(facts.tenant_id, facts.environment, index),
        "UpdateExpression": "SET #a = #a + :d",
        "ConditionExpression": "#mo = :month AND attribute_exists(#a)",
        "ExpressionAttributeNames": {"#a": ALLOC_OF[counter], "#mo": it.MONTH},
        "ExpressionAttributeValues": {":d": _n(amount), ":month": {"S": month}},
    }


def pick_donor(
    shards: Sequence[Mapping[str, Any]], counter: str, needed: int, month: str, exclude: int
) -> tuple[Mapping[str, Any], int] | None:
    """The shard with the most allocation left in ``month`` and how much to take from it
    (half of what it has left, at least ``needed``), or None if no shard has anything left.

    When no single shard has ``needed`` left (what is left is spread thin, as a spend
    budget's micro-dollars can be), the one with the most gives all it has left: the caller
    tries again and gathers the rest from the next one, so what a tenant has left is usable
    by one request whatever shards hold it.
    """
    alloc = ALLOC_OF[counter]
    best: tuple[Mapping[str, Any], int] | None = None
    for shard in shards:
        if int(shard.get(it.INDEX) or 0) == exclude or str(shard.get(it.MONTH)) != month:
            continue
        if shard.get(alloc) is None:
            continue
        room = int(shard[alloc]) - int(shard.get(counter) or 0)
        if room > 0 and (best is None or room > best[1]):
            best = (shard, room)
    if best is None:
        return None
    if best[1] < needed:
        return best
    return best[0], max(needed, best[1] // 2)
