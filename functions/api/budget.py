"""Exact token budgets: reserve the worst case before the model call, settle after.

Two budgets live on the tenant item (``functions/common/models.py`` and ``gate.py``): the
tenant's monthly tokens (``mtok`` counted in month ``mo`` against ``lim_tmo``; absent =
unlimited) and a delegated key's budget (``gate[key].u`` against ``gate[key].b``).

**Reserve** is one conditional ``UpdateItem`` that adds ``r`` (prompt upper bound +
``max_tokens``) to both counters in the same write. DynamoDB conditions cannot add, so the
limit is compared with a bound computed here from the limits the authorizer saw:
``#mo = :month AND #lim = :lim AND #mtok <= :lim - r`` (``attribute_not_exists(#lim)`` when
unlimited) and ``#gate.#k.#b = :b AND #gate.#k.#u <= :b - r`` (``attribute_not_exists`` of
the budget when there is none). Pinning the limits themselves in the condition makes a
stale view (a new month, a changed limit) fail rather than pass. On failure the item as it
was (``ALL_OLD``) tells why: if the request fits the fresh values it is retried with them
(at most :data:`ATTEMPTS` tries); if it does not, it is refused 429 ``insufficient_quota``
and never reaches a model. When the client sent no ``max_tokens``, the default allowance
shrinks to what is left (at least one completion token) instead of being refused.

Because every reservation is an upper bound and a write succeeds only if the sum stays
within the limit, the counters never pass a limit, whatever the concurrency.

**Settle** is one ``UpdateItem`` adding ``actual - r`` (negative: tokens handed back); it is
skipped when the reservation was exact. The tenant part is conditional on ``#mo = :month``
so a reservation made in a month that has since rolled over is not subtracted from the new
month's count (the key part, not windowed, is then settled alone). A release after a
failed model call is a settle with ``actual = 0``. With no limit at all nothing is reserved
and the settle only counts the actual tokens.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

from functions.api.errors import InsufficientQuota, ServiceUnavailable, TenantUnavailable
from functions.api.store import ApiStore, ConditionFailed
from functions.common import gate
from functions.common.observability import MetricUnit, logger, metrics

ATTEMPTS: Final = 3


@dataclass(frozen=True)
class Window:
    """The limits a reservation is checked against, as last seen."""

    month: str
    tenant_limit: int | None
    key_budget: int | None

    @property
    def unlimited(self) -> bool:
        return self.tenant_limit is None and self.key_budget is None


@dataclass(frozen=True)
class Reservation:
    tenant_id: str
    key_id: str
    month: str
    amount: int  # tokens added to the counters (0: nothing was reserved)
    key_budgeted: bool  # the key's gate entry carries a budget that was reserved against
    max_tokens: int  # the completion allowance the reservation covers


def _n(value: int) -> dict[str, str]:
    return {"N": str(int(value))}


def reserve_request(tenant_id: str, key_id: str, window: Window, amount: int) -> dict[str, Any]:
    """The conditional UpdateItem that reserves ``amount`` tokens (see module docstring)."""
    names = {"#mo": "mo", "#mtok": "mtok", "#lim": "lim_tmo", "#gate": "gate", "#k": key_id,
             "#b": gate.BUDGET}  # fmt: skip
    values: dict[str, Any] = {":month": {"S": window.month}, ":r": _n(amount), ":zero": _n(0)}
    conditions = ["#mo = :month"]
    sets = ["#mtok = if_not_exists(#mtok, :zero) + :r"]
    if window.tenant_limit is None:
        conditions.append("attribute_not_exists(#lim)")
    else:
        tmax = window.tenant_limit - amount
        values[":lim"], values[":tmax"] = _n(window.tenant_limit), _n(tmax)
        conditions.append("#lim = :lim")
        conditions.append(
            "(attribute_not_exists(#mtok) OR #mtok <= :tmax)" if tmax >= 0 else "#mtok <= :tmax"
        )
    if window.key_budget is None:
        conditions.append("attribute_not_exists(#gate.#k.#b)")
    else:
        names["#u"] = gate.USED
        values[":b"], values[":kmax"] = _n(window.key_budget), _n(window.key_budget - amount)
        conditions.append("#gate.#k.#b = :b")
        conditions.append("#gate.#k.#u <= :kmax")
        sets.append("#gate.#k.#u = #gate.#k.#u + :r")
    return {
        "Key": {"tenant_id": {"S": tenant_id}},
        "UpdateExpression": "SET " + ", ".join(sets),
        "ConditionExpression": " AND ".join(conditions),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ReturnValues": "NONE",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


def settle_request(
    reservation: Reservation, delta: int, *, tenant: bool = True
) -> dict[str, Any] | None:
    """The UpdateItem that adds ``delta`` to what ``reservation`` reserved (None: nothing)."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {":d": _n(delta)}
    sets, conditions = [], []
    if tenant:
        names.update({"#mo": "mo", "#mtok": "mtok"})
        values[":month"] = {"S": reservation.month}
        values[":zero"] = _n(0)
        sets.append("#mtok = if_not_exists(#mtok, :zero) + :d")
        conditions.append("#mo = :month")
    if reservation.key_budgeted:
        names.update({"#gate": "gate", "#k": reservation.key_id, "#u": gate.USED})
        sets.append("#gate.#k.#u = #gate.#k.#u + :d")
        conditions.append("attribute_exists(#gate.#k.#u)")
    if not sets:
        return None
    return {
        "Key": {"tenant_id": {"S": reservation.tenant_id}},
        "UpdateExpression": "SET " + ", ".join(sets),
        "ConditionExpression": " AND ".join(conditions),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ReturnValues": "NONE",
    }


@dataclass(frozen=True)
class Room:
    """What the item as it was says: the fresh window and the tokens left under each limit."""

    window: Window
    tenant_left: int | None
    key_left: int | None

    @property
    def left(self) -> int | None:
        known = [v for v in (self.tenant_left, self.key_left) if v is not None]
        return min(known) if known else None


def room(old: dict[str, Any] | None, key_id: str) -> Room:
    if not old or old.get("status", "active") != "active":
        raise TenantUnavailable()
    month = old.get("mo")
    if not isinstance(month, str):
        raise ServiceUnavailable("The tenant's counters are not initialised.")
    lim = old.get("lim_tmo")
    entry = (old.get("gate") or {}).get(key_id) or {}
    budget = entry.get(gate.BUDGET)
    return Room(
        window=Window(
            month=month,
            tenant_limit=None if lim is None else int(lim),
            key_budget=None if budget is None else int(budget),
        ),
        tenant_left=None if lim is None else int(lim) - int(old.get("mtok") or 0),
        key_left=None if budget is None else int(budget) - int(entry.get(gate.USED) or 0),
    )


def _refusal(fresh: Room, needed: int) -> InsufficientQuota:
    if fresh.key_left is not None and fresh.key_left < needed:
        return InsufficientQuota(
            "Not enough tokens left in this delegated key's token budget for this request "
            f"(needs up to {needed}, {max(fresh.key_left, 0)} left)."
        )
    left = max(fresh.tenant_left or 0, 0)
    return InsufficientQuota(
        "Not enough tokens left in the tenant's monthly token limit for this request "
        f"(needs up to {needed}, {left} left).",
        retry_after=gate.seconds_to_next_month(time.time()),
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
    ) -> Reservation:
        """Reserve ``prompt_tokens + max_tokens`` or raise :class:`InsufficientQuota`.

        ``flexible``: the client did not choose ``max_tokens``; it may shrink to what is left.
        """
        if window.unlimited:
            return Reservation(tenant_id, key_id, window.month, 0, False, max_tokens)
        refusal: InsufficientQuota | None = None
        for _ in range(ATTEMPTS):
            amount = prompt_tokens + max_tokens
            request = reserve_request(tenant_id, key_id, window, amount)
            try:
                self._store.update_tenant(request)
            except ConditionFailed as failed:
                fresh = room(failed.old, key_id)
                left = fresh.left
                if left is None or left >= amount:  # a stale view: retry with fresh values
                    window, refusal = fresh.window, None
                    continue
                if flexible and left - prompt_tokens >= 1:
                    window, max_tokens = fresh.window, left - prompt_tokens
                    refusal = _refusal(fresh, amount)  # if others keep taking what is left
                    continue
                raise _refusal(fresh, amount) from None
            return Reservation(
                tenant_id, key_id, window.month, amount, window.key_budget is not None, max_tokens
            )
        if refusal is not None:
            raise refusal
        # Only reachable when the limits kept changing under us between attempts.
        raise ServiceUnavailable("The token budget changed while reserving; retry.")

    def settle(self, reservation: Reservation, actual: int) -> None:
        """Bring the counters from the reserved amount to ``actual`` (0: release it all).

        Never raises: a settle that cannot be written leaves the reservation in place (the
        counters then over-count, never under-count), and says so in the logs and metrics.
        """
        delta = actual - reservation.amount
        if delta == 0:
            return
        if delta > 0 and reservation.amount:
            logger.warning(
                "model reported more tokens than reserved",
                extra={"reserved": reservation.amount, "actual": actual},
            )
            metrics.add_metric(name="BudgetOverrun", unit=MetricUnit.Count, value=1)
        request = settle_request(reservation, delta)
        try:
            if request is not None:
                try:
                    self._store.update_tenant(request, once=True)
                except ConditionFailed:
                    # The month rolled over since the reservation: leave the new month alone.
                    key_only = settle_request(reservation, delta, tenant=False)
                    if key_only is not None:
                        self._store.update_tenant(key_only, once=True)
        except ConditionFailed:
            pass  # the key's gate entry is gone: nothing left to settle against
        except ServiceUnavailable as exc:
            logger.error(
                "settle failed; the reservation stays counted",
                extra={"tenant_id": reservation.tenant_id, "key_id": reservation.key_id,
                       "delta": delta, "error": exc.message},
            )  # fmt: skip
            metrics.add_metric(name="SettleFailed", unit=MetricUnit.Count, value=1)
