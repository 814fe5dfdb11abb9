"""The plan of the caller's tenant: models, tools and prices, cached per container.

Plans are immutable once created (``tollgate plans create``; a tenant changes plan by
pointing at another one), so a plan read once serves every later request of the container:
no round trip on the hot path. Only found plans are cached.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final

from functions.api.errors import ServiceUnavailable
from functions.api.providers import ECHO_MODEL, route
from functions.api.store import ApiStore
from functions.pricing.catalogue import SOURCE_OVERRIDE, price_from_map
from functions.pricing.money import Price

CACHE_SIZE: Final = 512


@dataclass(frozen=True)
class PlanView:
    name: str
    models: tuple[str, ...]
    tools: tuple[str, ...] | None  # None: every tool
    price_prompt_micros_per_1k: int
    price_completion_micros_per_1k: int
    # pricing (issue 14): the plan's per-model overrides (plans are immutable: cached with it)
    model_prices: dict[str, Price] = field(default_factory=dict)

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> PlanView:
        tools = item.get("tools")
        return cls(
            name=str(item["name"]),
            models=tuple(str(m) for m in item.get("models") or ()),
            tools=None if tools is None else tuple(str(t) for t in tools),
            price_prompt_micros_per_1k=int(item.get("price_prompt_micros_per_1k") or 0),
            price_completion_micros_per_1k=int(item.get("price_completion_micros_per_1k") or 0),
            model_prices={
                str(model): price_from_map(value, SOURCE_OVERRIDE)
                for model, value in (item.get("model_prices") or {}).items()
            },
        )

    def models_for(self, environment: str) -> tuple[str, ...]:
        """The models a key of ``environment`` may use: tollgate-echo always; a live key
        also every routable model the plan lists; a test key nothing else."""
        if environment != "live":
            return (ECHO_MODEL,)
        listed = [m for m in self.models if m != ECHO_MODEL and route(m) is not None]
        return (ECHO_MODEL, *dict.fromkeys(listed))

    def allows_tool(self, name: str) -> bool:
        return self.tools is None or name in self.tools


class PlanCache:
    def __init__(self, store: ApiStore) -> None:
        self._store = store
        self._plans: OrderedDict[str, PlanView] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str) -> PlanView:
        with self._lock:
            cached = self._plans.get(name)
        if cached is not None:
            return cached
        item = self._store.get_plan(name) if name else None
        if item is None:
            raise ServiceUnavailable("The tenant's plan could not be found.")
        plan = PlanView.from_item(item)
        with self._lock:
            self._plans[name] = plan
            if len(self._plans) > CACHE_SIZE:
                self._plans.popitem(last=False)
        return plan
