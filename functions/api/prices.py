"""The price the Api charges a call at: the seam between the model call and the catalogue.

``Prices.of(plan, model)`` is the one question the request path asks; the answer is fixed
into the request's usage event at settle (functions/pricing/money.py). Today it is the
plan's flat 0.1.0 price (per 1,000 tokens, every model alike); the per-model catalogue with
plan overrides replaces the body of :meth:`Prices.of`, not its callers.
"""

from __future__ import annotations

from functions.api.plans import PlanView
from functions.api.store import ApiStore
from functions.pricing.money import Price


class Prices:
    def __init__(self, store: ApiStore) -> None:
        self._store = store

    def of(self, plan: PlanView, model: str) -> Price:
        """What ``model`` costs a tenant on ``plan`` (micro-dollars per 1M tokens)."""
        return Price.per_1k(plan.price_prompt_micros_per_1k, plan.price_completion_micros_per_1k)
