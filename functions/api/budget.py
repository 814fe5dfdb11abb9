"""Exact token and spend budgets: reserve the worst case before the model call, settle after.

Four budgets, on two small items of the gate (``functions/gate/items.py``): the tenant's
monthly tokens for the key's environment, on the counter shard that admitted the request
(``tk`` counted in month ``mo`` against the shard's allocation ``ta``; absent = unlimited),
and a delegated key's budget on its key item (``u`` against ``b``); and the same two in
micro-dollars: the tenant's monthly **live** spend (``sp`` against the shard's ``sa``; test
shards count no spend) and a delegated key's spend budget (``su`` against ``sb``).

**Reserve** adds ``r`` (prompt upper bound + ``max_tokens``) tokens and ``s`` micro-dollars
(``functions/pricing/money.py`` ``worst_case_micros`` of those tokens at the call's price)
to both items, each with **one** conditional ``UpdateItem`` that checks and adds tokens and
spend together (no extra round trip for money), the key item first. DynamoDB conditions
cannot add, so each limit is compared with a bound computed here from the limit the
authorizer saw, and the limit itself is pinned in the condition (``#ta = :ta AND #tk <= :ta
- r``): a stale view (a new month, an allocation moved by a borrow, a changed budget) fails
rather than passes. On failure the item as it was (``ALL_OLD``) tells why: if the request
fits the fresh values it is retried with them; if the shard alone is short and the tenant
has other shards, allocation is borrowed from them (``functions/gate/store.py`` ``borrow``,
tokens or spend alike); otherwise it is refused 429 ``insufficient_quota`` (with
``Retry-After``; the message names the budget that is short) and never reaches a model. When
the client sent no ``max_tokens``, the allowance shrinks to what is left (at least one
completion token), in tokens and in what the money left buys at the call's price
(:func:`affordable_completion`), instead of being refused. A failure of the second write
gives the first one back.

Because every reservation is an upper bound and a write succeeds only if the sum stays
within the limit, the counters never pass a limit, whatever the concurrency.

**Settle** adds ``actual - r`` tokens and ``cost - s`` micro-dollars to each (negative:
handed back; ``cost`` is the usage event's own cost), sent once each (a
lost answer leaves the reservation counted: over, never under). The shard part is
conditional on ``#mo = :month`` so a reservation made in a month that has since rolled over
is not subtracted from the new month's count. With no limit at all nothing is reserved and
the settle only counts the actual tokens (and, on a live shard, the actual cost).

**Marker.** After a non-zero reservation one more write puts the reservation's marker
(``functions/gate/reservations.py``); the settle deletes it after the counters. A function
killed in between leaves it, and the sweep (``functions/sweep``) settles that reservation
at its upper bound (tokens and spend: the marker records both) with an estimated usage
event. A marker that cannot be written is logged and counted
(``ReservationMarkerFailed``); the request goes on (its reservation would then stay
counted if the function were also killed: over, never under).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any, Final

from functions.api.errors import InsufficientQuota, ServiceUnavailable, TenantUnavailable
from functions.api.store import ApiStore, ConditionFailed
from functions.gate import items as it
from functions.gate import reservations
from functions.pricing import money
from functions.pricing.money import Price

ATTEMPTS: Final = 6


@dataclass(frozen=True)
class Window:
    """The limits a reservation is checked against, as last seen, and where they live."""

    month: str
    tenant_limit: int | None  # the admitting shard's token allocation (None: unlimited)
    key_budget: int | None
    environment: str = "live"
    shard: int = 0
    parent_key_id: str | None = None
    spend_alloc: int | None = None  # the admitting shard's spend allocation (None: unlimited)
    key_spend_budget: int | None = None  # a delegated key's spend budget (micro-dollars)

    @property
    def live(self) -> bool:
        """Only live keys count against the tenant's spend (test shards have no spend)."""
        return self.environment == "live"

    @property
    def key_limited(self) -> bool:
        return self.key_budget is not None or self.key_spend_budget is not None

    @property
    def unlimited(self) -> bool:
        return (
            self.tenant_limit is None
            and self.key_budget is None
            and (self.spend_alloc is None or not self.live)
            and self.key_spend_budget is None
        )


@dataclass(frozen=True)
class Reservation:
    tenant_id: str
    key_id: str
    month: str
    amount: int  # tokens added to the counters (0: nothing was reserved)
    key_budgeted: bool  # the key item carries a budget that was reserved against
    max_tokens: int  # the completion allowance the reservation covers
    environment: str = "live"
    shard: int = 0
    parent_key_id: str | None = None
    marker: it.Address | None = None  # the marker to delete once settled
    spend: int = 0  # micro-dollars added to the counters (the worst case of ``amount``)
    key_spend_budgeted: bool = False  # the key item carries a spend budget reserved against

    @property
    def live(self) -> bool:
        return self.environment == "live"


def _n(value: int) -> dict[str, str]:
    return {"N": str(int(value))}


def key_reserve_request(key_id: str, window: Window, amount: int, spend: int = 0) -> dict[str, Any]:
    """Tokens and spend on the key item in one conditional write: each budget the key has
    is pinned (``#b = :b``) and compared with a bound computed here (``#u <= :kmax``)."""
    assert window.key_limited
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    sets, conditions = [], []
    if window.key_budget is not None:
        names.update({"#u": it.USED, "#b": it.BUDGET})
        values.update({":r": _n(amount), ":b": _n(window.key_budget),
                       ":kmax": _n(window.key_budget - amount)})  # fmt: skip
        sets.append("#u = #u + :r")
        conditions += ["#b = :b", "#u <= :kmax"]
    if window.key_spend_budget is not None:
        names.update({"#su": it.SPENT, "#sb": it.SPEND_BUDGET})
        values.update({":s": _n(spend), ":sb": _n(window.key_spend_budget),
                       ":smax": _n(window.key_spend_budget - spend)})  # fmt: skip
        sets.append("#su = #su + :s")
        conditions += ["#sb = :sb", "#su <= :smax"]
    return {
        "Key": it.key_address(key_id, window.parent_key_id),
        "UpdateExpression": "SET " + ", ".join(sets),
        "ConditionExpression": " AND ".join(conditions),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


def shard_reserve_request(
    tenant_id: str, window: Window, amount: int, spend: int = 0
) -> dict[str, Any]:
    """Tokens and (live) spend on the counter shard in one conditional write, each limit
    pinned at the allocation the view had (absent pinned absent)."""
    names = {"#mo": it.MONTH, "#tk": it.TOKENS, "#ta": it.TOKEN_ALLOC}
    values: dict[str, Any] = {":month": {"S": window.month}, ":r": _n(amount)}
    conditions = ["#mo = :month"]
    sets = ["#tk = #tk + :r"]
    if window.tenant_limit is None:
        conditions.append("attribute_not_exists(#ta)")
    else:
        values[":ta"], values[":tmax"] = _n(window.tenant_limit), _n(window.tenant_limit - amount)
        conditions += ["#ta = :ta", "#tk <= :tmax"]
    if window.live:
        names["#sa"] = it.SPEND_ALLOC
        if window.spend_alloc is None:
            conditions.append("attribute_not_exists(#sa)")
        else:
            values[":sa"] = _n(window.spend_alloc)
            values[":smax"] = _n(window.spend_alloc - spend)
            names["#sp"] = it.SPEND
            conditions += ["#sa = :sa", "#sp <= :smax"]
        if spend:  # counted even without a limit: the month's spend, for views and notices
            names["#sp"] = it.SPEND
            values[":s"], values[":z"] = _n(spend), _n(0)
            sets.append("#sp = if_not_exists(#sp, :z) + :s")
    return {
        "Key": it.shard_address(tenant_id, window.environment, window.shard),
        "UpdateExpression": "SET " + ", ".join(sets),
        "ConditionExpression": " AND ".join(conditions),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


def shard_settle_request(
    reservation: Reservation, delta: int, spend_delta: int = 0
) -> dict[str, Any]:
    names = {"#tk": it.TOKENS, "#mo": it.MONTH}
    values: dict[str, Any] = {":d": _n(delta), ":month": {"S": reservation.month}}
    sets = ["#tk = #tk + :d"]
    if spend_delta and reservation.live:
        names["#sp"] = it.SPEND
        values[":sd"], values[":z"] = _n(spend_delta), _n(0)
        sets.append("#sp = if_not_exists(#sp, :z) + :sd")
    return {
        "Key": it.shard_address(reservation.tenant_id, reservation.environment, reservation.shard),
        "UpdateExpression": "SET " + ", ".join(sets),
        "ConditionExpression": "#mo = :month",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def key_settle_request(
    reservation: Reservation, delta: int, spend_delta: int = 0
) -> dict[str, Any]:
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    sets, conditions = [], []
    if reservation.key_budgeted:
        names["#u"], values[":d"] = it.USED, _n(delta)
        sets.append("#u = #u + :d")
        conditions.append("attribute_exists(#u)")
    if reservation.key_spend_budgeted:
        names["#su"], values[":sd"] = it.SPENT, _n(spend_delta)
        sets.append("#su = #su + :sd")
        conditions.append("attribute_exists(#su)")
    return {
        "Key": it.key_address(reservation.key_id, reservation.parent_key_id),
        "UpdateExpression": "SET " + ", ".join(sets),
        "ConditionExpression": " AND ".join(conditions),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def affordable_completion(price: Price | None, prompt_tokens: int, micros_left: int,
                          wanted: int) -> int:  # fmt: skip
    """The most completion tokens (at most ``wanted``) whose worst case, with the prompt's,
    fits ``micros_left``: the largest ``c`` with ``worst_case_micros(price, prompt, c) <=
    micros_left`` (0 when not even the prompt fits). Exact integer arithmetic."""
    if price is None:
        return wanted
    budget = micros_left * money.TOKENS_PER_PRICE
    prompt_cost = prompt_tokens * max(price.prompt, price.cached_rate)
    if prompt_cost > budget:
        return 0
    rate = max(price.completion, price.reasoning_rate)
    if rate == 0:
        return wanted
    return min(wanted, (budget - prompt_cost) // rate)


def _left(limit: Any, used: Any) -> int | None:
    return None if limit is None else int(limit) - int(used or 0)


def _key_refusal(needed: int, left: int) -> InsufficientQuota:
    # A key's budget does not refill: no Retry-After would help, but clients expect one
    # on a 429; a day says "not soon" (docs/architecture.md, "How 429 reaches the client").
    return InsufficientQuota(
        "Not enough tokens left in this delegated key's token budget for this request "
        f"({max(left, 0)} left; this request may use up to {needed}: lower max_tokens or "
        "the prompt).",
        retry_after=86_400,
    )


def _key_spend_refusal(needed: int, left: int) -> InsufficientQuota:
    return InsufficientQuota(
        "Not enough money left in this delegated key's spend budget for this request "
        f"(USD {money.usd(max(left, 0))} left; this request may cost up to USD "
        f"{money.usd(needed)}: lower max_tokens or the prompt).",
        retry_after=86_400,
    )


def _tenant_spend_refusal(needed: int, left: int) -> InsufficientQuota:
    return InsufficientQuota(
        "Not enough money left in the tenant's monthly spend budget for this request "
        f"(USD {money.usd(max(left, 0))} left; this request may cost up to USD "
        f"{money.usd(needed)}: lower max_tokens or the prompt).",
        retry_after=it.seconds_to_next_month(time.time()),
    )


def _tenant_refusal(needed: int, left: int) -> InsufficientQuota:
    return InsufficientQuota(
        "Not enough tokens left in the tenant's monthly token limit for this request "
        f"({max(left, 0)} left; this request may use up to {needed}: lower max_tokens or "
        "the prompt).",
        retry_after=it.seconds_to_next_month(time.time()),
    )


@dataclass(frozen=True)
class _Short:
    """What a fresh item leaves for this request: the allowance that fits it (``max_tokens``
    when everything fits) and the refusal to give if even that does not."""

    allowance: int
    refusal: InsufficientQuota | None


def _fit(
    *,
    key: bool,
    tokens_left: int | None,
    spend_left: int | None,
    prompt_tokens: int,
    max_tokens: int,
    price: Price | None,
) -> _Short:
    amount = prompt_tokens + max_tokens
    allowance, refusal = max_tokens, None
    if tokens_left is not None and tokens_left < amount:
        allowance = max(0, tokens_left - prompt_tokens)
        refusal = _key_refusal(amount, tokens_left) if key else _tenant_refusal(amount, tokens_left)
    if spend_left is not None:
        spend = (
            money.worst_case_micros(price, prompt_tokens, max_tokens) if price is not None else 0
        )
        if spend_left < spend:
            affordable = affordable_completion(price, prompt_tokens, spend_left, max_tokens)
            if affordable < allowance:
                allowance = affordable
                refusal = (_key_spend_refusal(spend, spend_left) if key
                           else _tenant_spend_refusal(spend, spend_left))  # fmt: skip
    return _Short(allowance, refusal)


class Budget:
    def __init__(self, store: ApiStore) -> None:
        self._store = store

    def reserve(
        self,
        *,
        tenant_id: str,
        key_id: str,
        window: Window,
        prompt_tokens: int,
        max_tokens: int,
        flexible: bool,
        marker: reservations.Marker | None = None,
        price: Price | None = None,
    ) -> Reservation:
        """Reserve ``prompt_tokens + max_tokens`` (and, at ``price``, their worst-case cost)
        or raise :class:`InsufficientQuota`.

        ``flexible``: the client did not choose ``max_tokens``; it may shrink to what is left.
        ``marker``: what to write so that a sweep can settle this reservation if the function
        dies before it does (written only when something was reserved). ``price``: what the
        call costs (``functions/api/prices.py``); None reserves no spend.
        """
        if window.unlimited:
            return self._reservation(tenant_id, key_id, window, 0, max_tokens, 0)
        refusal: InsufficientQuota | None = None  # raised if others keep taking what is left
        attempt, attempts = 0, ATTEMPTS
        while attempt < attempts:
            attempt += 1
            amount = prompt_tokens + max_tokens
            spend = (
                money.worst_case_micros(price, prompt_tokens, max_tokens)
                if price is not None
                else 0
            )
            if window.key_limited:
                try:
                    self._store.update_gate(key_reserve_request(key_id, window, amount, spend))
                except ConditionFailed as failed:
                    old = failed.old or {}
                    if old.get(it.STATUS) is None:
                        raise TenantUnavailable() from None
                    budget = None if old.get(it.BUDGET) is None else int(old[it.BUDGET])
                    sbudget = (None if old.get(it.SPEND_BUDGET) is None
                               else int(old[it.SPEND_BUDGET]))  # fmt: skip
                    window = _with(window, key_budget=budget, key_spend_budget=sbudget)
                    short = _fit(key=True, tokens_left=_left(budget, old.get(it.USED)),
                                 spend_left=_left(sbudget, old.get(it.SPENT)),
                                 prompt_tokens=prompt_tokens, max_tokens=max_tokens,
                                 price=price)  # fmt: skip
                    if short.refusal is None:
                        continue
                    if flexible and short.allowance >= 1:
                        max_tokens, refusal = short.allowance, short.refusal
                        continue
                    raise short.refusal from None
            try:
                self._store.update_gate(shard_reserve_request(tenant_id, window, amount, spend))
            except ServiceUnavailable:
                if window.key_limited:  # the key's part must not stay reserved
                    self._give_back_key(key_id, window, amount, spend)
                raise
            except ConditionFailed as failed:
                if window.key_limited:
                    self._give_back_key(key_id, window, amount, spend)
                from functions.gate.store import DependencyError

                if int((failed.old or {}).get(it.SHARDS) or 1) > 1:
                    # each borrow can be outrun by concurrent borrowers near exhaustion: a
                    # few more attempts per shard before refusing (as the authorizer does)
                    attempts = ATTEMPTS + 2 * int((failed.old or {})[it.SHARDS])
                try:
                    window, max_tokens, seen = self._after_shard_refusal(
                        failed.old, tenant_id, key_id, window, prompt_tokens, max_tokens,
                        flexible, price,
                    )  # fmt: skip
                except DependencyError:
                    raise ServiceUnavailable("The token budget is unavailable; retry.") from None
                # a request outrun near exhaustion is refused as short, not failed: keep the
                # last refusal seen even if a later look found room that others then took
                refusal = seen or refusal
                continue
            reservation = self._reservation(tenant_id, key_id, window, amount, max_tokens, spend)
            if marker is not None:
                reservation = self._mark(reservation, marker, prompt_tokens)
            return reservation
        if refusal is not None:
            raise refusal
        raise ServiceUnavailable("The token budget kept changing while reserving; retry.")

    def _after_shard_refusal(
        self,
        old: dict[str, Any] | None,
        tenant_id: str,
        key_id: str,
        window: Window,
        prompt_tokens: int,
        max_tokens: int,
        flexible: bool,
        price: Price | None,
    ) -> tuple[Window, int, InsufficientQuota | None]:
        """The fresh window to try again with, the allowance, and the refusal to give if
        others keep taking what is left; or raise a refusal."""
        from functions.gate import admission, store

        if not old or old.get(it.TENANT_STATUS) != it.ACTIVE:
            raise TenantUnavailable()
        month = str(old.get(it.MONTH) or "")
        if month < window.month:  # the shard has not opened this month yet: open it
            view = {**old, "_tenant": tenant_id, "_env": window.environment}
            with contextlib.suppress(store.ConditionFailed):
                store.call("update_item", **admission.rollover(self._store.tables.gate, view,
                                                               window.month))  # fmt: skip
            return window, max_tokens, None
        alloc = None if old.get(it.TOKEN_ALLOC) is None else int(old[it.TOKEN_ALLOC])
        salloc = None
        if window.live and old.get(it.SPEND_ALLOC) is not None:
            salloc = int(old[it.SPEND_ALLOC])
        window = _with(window, month=month, tenant_limit=alloc, spend_alloc=salloc)
        amount = prompt_tokens + max_tokens
        spend = (
            money.worst_case_micros(price, prompt_tokens, max_tokens) if price is not None else 0
        )
        left, spend_left = _left(alloc, old.get(it.TOKENS)), _left(salloc, old.get(it.SPEND))
        short = _fit(key=False, tokens_left=left, spend_left=spend_left,
                     prompt_tokens=prompt_tokens, max_tokens=max_tokens, price=price)  # fmt: skip
        if short.refusal is None:
            return window, max_tokens, None
        shards = max(1, int(old.get(it.SHARDS) or 1))
        if shards > 1:
            facts = admission.Facts(key_id, tenant_id, window.environment, "", frozenset(),
                                    window.parent_key_id, None, 0)  # fmt: skip
            view_s = admission.ShardView.of(old)
            if left is not None and left < amount:
                counter, needed = it.TOKENS, amount - left
            else:
                counter, needed = it.SPEND, spend - (spend_left or 0)
            if store.borrow(self._store.tables.gate, facts, window.shard, view_s, counter,
                            needed, month):  # fmt: skip
                # refused after all if others keep taking what was borrowed
                return window, max_tokens, short.refusal
        if flexible and short.allowance >= 1:
            return window, short.allowance, short.refusal
        raise short.refusal

    def _give_back_key(self, key_id: str, window: Window, amount: int, spend: int) -> None:
        """Hand back a key's reservation whose tenant part failed; if that cannot be written
        it stays reserved (over-counts, never under-counts) and says so, as a settle does."""
        from functions.common.observability import MetricUnit, logger, metrics

        reservation = self._reservation("", key_id, window, amount, 0, spend)
        try:
            self._store.update_gate(key_settle_request(reservation, -amount, -spend), once=True)
        except ConditionFailed:
            pass
        except ServiceUnavailable as exc:
            logger.error(
                "settle failed; the reservation stays counted",
                extra={"tenant_id": "", "key_id": key_id, "part": "key", "delta": -amount,
                       "spend_delta": -spend, "error": exc.message},
            )  # fmt: skip
            metrics.add_metric(name="SettleFailed", unit=MetricUnit.Count, value=1)

    def _mark(
        self, reservation: Reservation, marker: reservations.Marker, prompt_tokens: int
    ) -> Reservation:
        """Put the reservation's marker; the reservation carries its address (None if the
        write failed: logged and counted, the request goes on)."""
        from dataclasses import replace

        from functions.common.observability import MetricUnit, logger, metrics
        from functions.gate.store import DependencyError

        r = reservation
        reserved = reservations.Reserved(
            r.tenant_id, r.environment, r.shard, r.key_id, r.parent_key_id, r.key_budgeted,
            r.amount, r.month, r.spend, r.key_spend_budgeted,
        )  # fmt: skip
        item = reservations.marker_item(
            marker, reserved, prompt_tokens, r.max_tokens, it.minute_window()
        )
        try:
            reservations.put(self._store.tables.gate, item)
        except DependencyError as exc:
            logger.error("reservation marker not written",
                         extra={"request_id": marker.request_id, "error": str(exc)})  # fmt: skip
            metrics.add_metric(name="ReservationMarkerFailed", unit=MetricUnit.Count, value=1)
            return r
        return replace(r, marker={"pk": item["pk"], "sk": item["sk"]})

    @staticmethod
    def _reservation(
        tenant_id: str, key_id: str, window: Window, amount: int, max_tokens: int, spend: int
    ) -> Reservation:
        reserved = amount > 0
        return Reservation(
            tenant_id, key_id, window.month, amount,
            reserved and window.key_budget is not None, max_tokens,
            window.environment, window.shard, window.parent_key_id, None,
            spend if window.live or window.key_spend_budget is not None else 0,
            reserved and window.key_spend_budget is not None,
        )  # fmt: skip

    def settle(self, reservation: Reservation, actual: int, cost: int | None = None) -> None:
        """Bring the counters from the reserved amount to ``actual`` tokens costing ``cost``
        micro-dollars (``actual`` 0: release it all). ``cost`` None keeps the spend
        reserved (over, never under) unless ``actual`` is 0; callers pass the cost their
        usage event bills, so the spend counters add up to the events.

        Never raises: a settle that cannot be written leaves the reservation in place (the
        counters then over-count, never under-count), and says so in the logs and metrics.
        """
        from functions.common.observability import logger

        if cost is None:
            cost = 0 if actual == 0 else reservation.spend
        delta, spend_delta = actual - reservation.amount, cost - reservation.spend
        if delta != 0 or spend_delta != 0:
            self._settle_counters(reservation, actual, delta, spend_delta)
        if reservation.marker is not None:
            from functions.gate.store import DependencyError

            try:
                reservations.delete(self._store.tables.gate, reservation.marker)
            except DependencyError as exc:  # the sweep finds the event written: no harm
                logger.warning("reservation marker not deleted", extra={"error": str(exc)})

    def _settle_counters(
        self, reservation: Reservation, actual: int, delta: int, spend_delta: int
    ) -> None:
        from functions.common.observability import MetricUnit, logger, metrics

        if (delta > 0 and reservation.amount) or (spend_delta > 0 and reservation.spend):
            logger.warning(
                "model reported more than reserved",
                extra={"reserved": reservation.amount, "actual": actual,
                       "spend_reserved": reservation.spend, "spend_delta": spend_delta},
            )  # fmt: skip
            metrics.add_metric(name="BudgetOverrun", unit=MetricUnit.Count, value=1)
        requests = []
        if delta != 0 or (spend_delta != 0 and reservation.live):
            requests.append(("tenant", shard_settle_request(reservation, delta, spend_delta)))
        if (reservation.key_budgeted and delta != 0) or (
            reservation.key_spend_budgeted and spend_delta != 0
        ):
            requests.append(("key", key_settle_request(reservation, delta, spend_delta)))
        for part, request in requests:
            try:
                self._store.update_gate(request, once=True)
            except ConditionFailed:
                pass
            except ServiceUnavailable as exc:
                logger.error(
                    "settle failed; the reservation stays counted",
                    extra={"tenant_id": reservation.tenant_id, "key_id": reservation.key_id,
                           "part": part, "delta": delta, "spend_delta": spend_delta,
                           "error": exc.message},
                )  # fmt: skip
                metrics.add_metric(name="SettleFailed", unit=MetricUnit.Count, value=1)


def _with(window: Window, **changes: Any) -> Window:
    from dataclasses import replace

    return replace(window, **changes)
