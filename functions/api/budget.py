"""Exact token budgets: reserve the worst case before the model call, settle after.

Two budgets, on two small items of the gate (``functions/gate/items.py``): the tenant's
monthly tokens for the key's environment, on the counter shard that admitted the request
(``tk`` counted in month ``mo`` against the shard's allocation ``ta``; absent = unlimited),
and a delegated key's budget on its key item (``u`` against ``b``).

**Reserve** adds ``r`` (prompt upper bound + ``max_tokens``) to both, each with one
conditional ``UpdateItem``, the key item first. DynamoDB conditions cannot add, so each limit
is compared with a bound computed here from the limit the authorizer saw, and the limit
itself is pinned in the condition (``#ta = :ta AND #tk <= :ta - r``): a stale view (a new
month, an allocation moved by a borrow, a changed budget) fails rather than passes. On failure
the item as it was (``ALL_OLD``) tells why: if the request fits the fresh values it is
retried with them; if the shard alone is short and the tenant has other shards, allocation is
borrowed from them (``functions/gate/store.py`` ``borrow``); otherwise it is refused 429
``insufficient_quota`` (with ``Retry-After``) and never reaches a model. When the client sent
no ``max_tokens``, the allowance shrinks to what is left (at least one completion token)
instead of being refused. A failure of the second write gives the first one back.

Because every reservation is an upper bound and a write succeeds only if the sum stays
within the limit, the counters never pass a limit, whatever the concurrency.

**Settle** adds ``actual - r`` to each (negative: tokens handed back), sent once each (a
lost answer leaves the reservation counted: over, never under). The shard part is
conditional on ``#mo = :month`` so a reservation made in a month that has since rolled over
is not subtracted from the new month's count. With no limit at all nothing is reserved and
the settle only counts the actual tokens.

**Marker.** After a non-zero reservation one more write puts the reservation's marker
(``functions/gate/reservations.py``); the settle deletes it after the counters. A function
killed in between leaves it, and the sweep (``functions/sweep``) settles that reservation at
its upper bound with an estimated usage event. A marker that cannot be written is logged and
counted (``ReservationMarkerFailed``); the request goes on (its reservation would then stay
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

    @property
    def unlimited(self) -> bool:
        return self.tenant_limit is None and self.key_budget is None


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


def _n(value: int) -> dict[str, str]:
    return {"N": str(int(value))}


def key_reserve_request(key_id: str, window: Window, amount: int) -> dict[str, Any]:
    assert window.key_budget is not None
    return {
        "Key": it.key_address(key_id, window.parent_key_id),
        "UpdateExpression": "SET #u = #u + :r",
        "ConditionExpression": "#b = :b AND #u <= :kmax",
        "ExpressionAttributeNames": {"#u": it.USED, "#b": it.BUDGET},
        "ExpressionAttributeValues": {
            ":r": _n(amount),
            ":b": _n(window.key_budget),
            ":kmax": _n(window.key_budget - amount),
        },
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


def shard_reserve_request(tenant_id: str, window: Window, amount: int) -> dict[str, Any]:
    names = {"#mo": it.MONTH, "#tk": it.TOKENS, "#ta": it.TOKEN_ALLOC}
    values: dict[str, Any] = {":month": {"S": window.month}, ":r": _n(amount)}
    conditions = ["#mo = :month"]
    if window.tenant_limit is None:
        conditions.append("attribute_not_exists(#ta)")
    else:
        values[":ta"], values[":tmax"] = _n(window.tenant_limit), _n(window.tenant_limit - amount)
        conditions += ["#ta = :ta", "#tk <= :tmax"]
    return {
        "Key": it.shard_address(tenant_id, window.environment, window.shard),
        "UpdateExpression": "SET #tk = #tk + :r",
        "ConditionExpression": " AND ".join(conditions),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


def shard_settle_request(reservation: Reservation, delta: int) -> dict[str, Any]:
    return {
        "Key": it.shard_address(reservation.tenant_id, reservation.environment, reservation.shard),
        "UpdateExpression": "SET #tk = #tk + :d",
        "ConditionExpression": "#mo = :month",
        "ExpressionAttributeNames": {"#tk": it.TOKENS, "#mo": it.MONTH},
        "ExpressionAttributeValues": {":d": _n(delta), ":month": {"S": reservation.month}},
    }


def key_settle_request(reservation: Reservation, delta: int) -> dict[str, Any]:
    return {
        "Key": it.key_address(reservation.key_id, reservation.parent_key_id),
        "UpdateExpression": "SET #u = #u + :d",
        "ConditionExpression": "attribute_exists(#u)",
        "ExpressionAttributeNames": {"#u": it.USED},
        "ExpressionAttributeValues": {":d": _n(delta)},
    }


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


def _tenant_refusal(needed: int, left: int) -> InsufficientQuota:
    return InsufficientQuota(
        "Not enough tokens left in the tenant's monthly token limit for this request "
        f"({max(left, 0)} left; this request may use up to {needed}: lower max_tokens or "
        "the prompt).",
        retry_after=it.seconds_to_next_month(time.time()),
    )


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
    ) -> Reservation:
        """Reserve ``prompt_tokens + max_tokens`` or raise :class:`InsufficientQuota`.

        ``flexible``: the client did not choose ``max_tokens``; it may shrink to what is left.
        ``marker``: what to write so that a sweep can settle this reservation if the function
        dies before it does (written only when something was reserved).
        """
        if window.unlimited:
            return self._reservation(tenant_id, key_id, window, 0, max_tokens)
        refusal: InsufficientQuota | None = None  # raised if others keep taking what is left
        for _ in range(ATTEMPTS):
            amount = prompt_tokens + max_tokens
            if window.key_budget is not None:
                try:
                    self._store.update_gate(key_reserve_request(key_id, window, amount))
                except ConditionFailed as failed:
                    old = failed.old or {}
                    if old.get(it.STATUS) is None:
                        raise TenantUnavailable() from None
                    budget = None if old.get(it.BUDGET) is None else int(old[it.BUDGET])
                    window = _with(window, key_budget=budget)
                    left = _left(budget, old.get(it.USED))
                    if left is None or left >= amount:
                        continue
                    if flexible and left - prompt_tokens >= 1:
                        max_tokens, refusal = left - prompt_tokens, _key_refusal(amount, left)
                        continue
                    raise _key_refusal(amount, left) from None
            try:
                self._store.update_gate(shard_reserve_request(tenant_id, window, amount))
            except ServiceUnavailable:
                if window.key_budget is not None:  # the key's part must not stay reserved
                    self._give_back_key(key_id, window, amount)
                raise
            except ConditionFailed as failed:
                if window.key_budget is not None:
                    self._give_back_key(key_id, window, amount)
                from functions.gate.store import DependencyError

                try:
                    window, max_tokens, refusal = self._after_shard_refusal(
                        failed.old, tenant_id, key_id, window, amount, prompt_tokens,
                        max_tokens, flexible,
                    )  # fmt: skip
                except DependencyError:
                    raise ServiceUnavailable("The token budget is unavailable; retry.") from None
                continue
            reservation = self._reservation(tenant_id, key_id, window, amount, max_tokens)
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
        amount: int,
        prompt_tokens: int,
        max_tokens: int,
        flexible: bool,
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
        window = _with(window, month=month, tenant_limit=alloc)
        left = _left(alloc, old.get(it.TOKENS))
        if left is None or left >= amount:
            return window, max_tokens, None
        shards = max(1, int(old.get(it.SHARDS) or 1))
        if shards > 1:
            facts = admission.Facts(key_id, tenant_id, window.environment, "", frozenset(),
                                    window.parent_key_id, None, 0)  # fmt: skip
            view_s = admission.ShardView.of(old)
            if store.borrow(self._store.tables.gate, facts, window.shard, view_s, it.TOKENS,
                            amount - left, month):  # fmt: skip
                return window, max_tokens, None
        if flexible and left - prompt_tokens >= 1:
            return window, left - prompt_tokens, _tenant_refusal(amount, left)
        raise _tenant_refusal(amount, left)

    def _give_back_key(self, key_id: str, window: Window, amount: int) -> None:
        """Hand back a key's reservation whose tenant part failed; if that cannot be written
        it stays reserved (over-counts, never under-counts) and says so, as a settle does."""
        from functions.common.observability import MetricUnit, logger, metrics

        reservation = self._reservation("", key_id, window, amount, 0)
        try:
            self._store.update_gate(key_settle_request(reservation, -amount), once=True)
        except ConditionFailed:
            pass
        except ServiceUnavailable as exc:
            logger.error(
                "settle failed; the reservation stays counted",
                extra={"tenant_id": "", "key_id": key_id, "part": "key", "delta": -amount,
                       "error": exc.message},
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
            r.amount, r.month,
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
        tenant_id: str, key_id: str, window: Window, amount: int, max_tokens: int
    ) -> Reservation:
        return Reservation(
            tenant_id, key_id, window.month, amount,
            amount > 0 and window.key_budget is not None, max_tokens,
            window.environment, window.shard, window.parent_key_id,
        )  # fmt: skip

    def settle(self, reservation: Reservation, actual: int) -> None:
        """Bring the counters from the reserved amount to ``actual`` (0: release it all).

        Never raises: a settle that cannot be written leaves the reservation in place (the
        counters then over-count, never under-count), and says so in the logs and metrics.
        """
        from functions.common.observability import logger

        delta = actual - reservation.amount
        if delta != 0:
            self._settle_counters(reservation, actual, delta)
        if reservation.marker is not None:
            from functions.gate.store import DependencyError

            try:
                reservations.delete(self._store.tables.gate, reservation.marker)
            except DependencyError as exc:  # the sweep finds the event written: no harm
                logger.warning("reservation marker not deleted", extra={"error": str(exc)})

    def _settle_counters(self, reservation: Reservation, actual: int, delta: int) -> None:
        from functions.common.observability import MetricUnit, logger, metrics

        if delta > 0 and reservation.amount:
            logger.warning(
                "model reported more tokens than reserved",
                extra={"reserved": reservation.amount, "actual": actual},
            )
            metrics.add_metric(name="BudgetOverrun", unit=MetricUnit.Count, value=1)
        requests = [("tenant", shard_settle_request(reservation, delta))]
        if reservation.key_budgeted:
            requests.append(("key", key_settle_request(reservation, delta)))
        for part, request in requests:
            try:
                self._store.update_gate(request, once=True)
            except ConditionFailed:
                pass
            except ServiceUnavailable as exc:
                logger.error(
                    "settle failed; the reservation stays counted",
                    extra={"tenant_id": reservation.tenant_id, "key_id": reservation.key_id,
                           "part": part, "delta": delta, "error": exc.message},
                )  # fmt: skip
                metrics.add_metric(name="SettleFailed", unit=MetricUnit.Count, value=1)


def _with(window: Window, **changes: Any) -> Window:
    from dataclasses import replace

    return replace(window, **changes)
