"""The usage aggregator's hook: after each write of a tenant's month total, emit the notices
of every threshold it has reached that has none yet.

Called by :func:`functions.usage.aggregator.apply_batch` with the item as the write left it
(``ReturnValues=ALL_NEW``) -- or, when the write is refused as a replay, as it is
(``ALL_OLD``). Detection is level-triggered (functions/notices/thresholds.py) and the
emission is one conditional put per notice (functions/notices/store.py), so:

* concurrent batches (other shards, other invocations) that see the same level race on the
  put; exactly one wins and the notice exists once;
* a retried or replayed batch finds the notice and writes nothing new;
* if the put fails (throttled, unavailable), :meth:`NoticeEmitter.observe` answers False
  and the aggregator reports the item's records for redelivery; their replay is refused by
  the rollup's mark but still shows the emitter the item's level, so the notice is written
  then.

Cost: the tenant's limits are read once a minute per container (two ``GetItem``); a
threshold known to be emitted is remembered, so a tenant past 100 % costs no extra write per
batch. A tenant without limits costs nothing beyond the cached read.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

from functions.common import ddb
from functions.common.observability import MetricUnit, logger, metrics
from functions.notices.thresholds import Crossing, Limits, month_total_period, reached

LIMITS_TTL_S: Final = 60.0


class LimitsSource(Protocol):
    def limits(self, tenant_id: str) -> Limits: ...


class NoticeWriter(Protocol):
    def put_notice(self, crossing: Crossing) -> bool: ...


class TableLimits:
    """A tenant's monthly live limits from its tenant item (requests, tokens: the copies the
    gate enforces) and its plan (``spend_per_month_micros``, absent before spend budgets)."""

    def __init__(self, tenants: str, plans: str, client: Callable[[], Any] = ddb.client) -> None:
        self.tenants, self.plans, self._client = tenants, plans, client

    def limits(self, tenant_id: str) -> Limits:
        tenant = self._get(self.tenants, {"tenant_id": {"S": tenant_id}})
        if tenant is None:
            return Limits()
        plan = self._get(self.plans, {"name": {"S": str(tenant.get("plan") or "")}}) or {}
        spend = tenant.get("lim_smo", plan.get("spend_per_month_micros"))
        return Limits(
            requests=_int(tenant.get("lim_rmo")),
            tokens=_int(tenant.get("lim_tmo")),
            spend=_int(spend),
        )

    def _get(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        item = self._client().get_item(TableName=table, Key=key).get("Item")
        return ddb.item_from_ddb(item) if item else None


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


class NoticeEmitter:
    """``observe(key, totals)``: the hook :func:`~functions.usage.aggregator.apply_batch` calls."""

    def __init__(
        self,
        writer: NoticeWriter,
        limits: LimitsSource,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_known: int = 100_000,
    ) -> None:
        self.writer, self.source, self.clock = writer, limits, clock
        self._limits: dict[str, tuple[float, Limits]] = {}
        self._known: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._max_known = max_known
        self._lock = threading.Lock()
        self.emitted: list[Crossing] = []  # what this container emitted (tests, bench)

    def limits(self, tenant_id: str) -> Limits:
        now = self.clock()
        with self._lock:
            cached = self._limits.get(tenant_id)
        if cached is not None and now - cached[0] < LIMITS_TTL_S:
            return cached[1]
        found = self.source.limits(tenant_id)
        with self._lock:
            self._limits[tenant_id] = (now, found)
        return found

    def observe(self, tenant_id: str, sk: str, totals: Mapping[str, int]) -> bool:
        """Emit what the month total ``totals`` has reached; False if a write failed (the
        caller has the records delivered again)."""
        period = month_total_period(sk)
        if period is None or not totals:
            return True
        try:
            limits = self.limits(tenant_id)
            if not limits:
                return True
            for crossing in reached(tenant_id, period, totals, limits):
                known = (tenant_id, crossing.sk)
                with self._lock:
                    if known in self._known:
                        continue
                if self.writer.put_notice(crossing):
                    with self._lock:
                        self.emitted.append(crossing)
                    metrics.add_metric(name="NoticesEmitted", unit=MetricUnit.Count, value=1)
                    logger.info(
                        "usage threshold reached",
                        extra={"tenant_id": tenant_id, "metric": crossing.metric,
                               "threshold_pct": crossing.threshold_pct, "period": period},
                    )  # fmt: skip
                self._remember(known)
        except Exception as exc:  # any failure: the records are delivered again
            logger.warning(
                "threshold notices not written: the records will be delivered again",
                extra={"tenant_id": tenant_id, "error": type(exc).__name__},
            )
            return False
        return True

    def _remember(self, known: tuple[str, str]) -> None:
        with self._lock:
            self._known[known] = None
            self._known.move_to_end(known)
            while len(self._known) > self._max_known:
                self._known.popitem(last=False)
