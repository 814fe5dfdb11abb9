"""The price the Api charges a call at: the seam between the model call and the catalogue.

``Prices.of(plan, model)`` is the one question the request path asks; the answer is fixed
into the request's usage event at settle (functions/api/usage.py), so a later price change
never rewrites history. The precedence (functions/pricing/catalogue.py ``resolve``): the
plan's override for the model > the plan's flat 0.1.0 price per 1k when non-zero > the
operator's catalogue price (``tollgate prices set``) > the genai-prices default > free.

**No round trip on the hot path in steady state.** Plans are immutable and cached per
container (functions/api/plans.py), their overrides with them. The operator's prices live
in one item (the plans table's reserved ``#prices``), read with one ``GetItem`` when first
needed and then kept for ``ttl_s`` (``TOLLGATE_PRICE_TTL_S``, default 60 s): a price set
by the operator reaches every container within that time. A plan whose own prices decide
never reads it. ``round_trips`` counts the reads (the bench reports it per request). If the
read fails, the last value read is used when there is one (a price a minute old is the
same price the previous request paid); without one the request fails closed (503).
The genai-prices defaults are computed once per model per container (no I/O).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Final

from functions.api.errors import ServiceUnavailable
from functions.api.plans import PlanView
from functions.api.store import ApiStore
from functions.pricing import catalogue
from functions.pricing.money import Price

DEFAULT_TTL_S: Final = 60.0


class Prices:
    def __init__(
        self,
        store: ApiStore,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl = ttl_s
        self._clock = clock
        self._operator: Mapping[str, Price] | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()
        self.round_trips = 0  # GetItem calls made for the operator's prices

    def of(self, plan: PlanView, model: str) -> Price:
        """What ``model`` costs a tenant on ``plan`` (micro-dollars per 1M tokens)."""
        override = plan.model_prices.get(model)
        flat = Price.per_1k(plan.price_prompt_micros_per_1k, plan.price_completion_micros_per_1k)
        if override is not None or flat.prompt or flat.completion:
            return catalogue.resolve(model, override=override, flat=flat, operator={})
        return catalogue.resolve(model, override=None, flat=None, operator=self.operator())

    def operator(self) -> Mapping[str, Price]:
        """The operator's prices, read at most once per ``ttl_s`` per container."""
        now = self._clock()
        with self._lock:
            if self._operator is not None and now - self._read_at < self._ttl:
                return self._operator
            try:
                self.round_trips += 1
                item = self._store.get_plan(catalogue.PRICE_BOOK)
            except ServiceUnavailable:
                if self._operator is not None:
                    return self._operator  # the last prices read; tried again next request
                raise
            self._operator = catalogue.operator_prices(item)
            self._read_at = now
            return self._operator

    def forget(self) -> None:
        """Drop the cached operator prices (tests; the next request reads them)."""
        with self._lock:
            self._operator = None
