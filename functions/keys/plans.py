"""Plans: the limits, scopes, models, tools, prices and spike policy a tenant is put on."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pynamodb.exceptions import PutError

from functions.common.models import Plan
from functions.common.routes import SCOPES
from functions.keys import rules
from functions.keys.audit import AuditMixin, default_actor
from functions.keys.base import _conditional_failed, log
from functions.keys.errors import AlreadyExists, InvalidInput, quote
from functions.keys.views import iso, plan_view
from functions.pricing.catalogue import RESERVED_PREFIX, BadPrice, parse_override, price_to_map


def _overrides(specs: Iterable[str] | None, models: list[str]) -> dict[str, Any]:
    """``--price`` specs as the plan's ``model_prices`` map (micro-dollars per 1M)."""
    out: dict[str, Any] = {}
    for spec in specs or ():
        try:
            model, price = parse_override(spec)
        except BadPrice as exc:
            raise InvalidInput(str(exc)) from None
        if model not in models:
            raise InvalidInput(
                f"--price {quote(model)}: the plan does not list that model (add it to --models)"
            )
        if model in out:
            raise InvalidInput(f"--price {quote(model)} given twice")
        out[model] = price_to_map(price)
    return out


class PlansMixin(AuditMixin):
    """Create, list and read plans."""

    def create_plan(
        self,
        name: str,
        *,
        requests_per_minute: int | None = None,
        requests_per_month: int | None = None,
        tokens_per_month: int | None = None,
        test_requests_per_month: int | None = None,
        test_tokens_per_month: int | None = None,
        counter_shards: int = 1,
        spend_per_month: str | None = None,
        scopes: Iterable[str] | None = None,
        models: Iterable[str] | None = None,
        tools: Iterable[str] | None = None,
        price_per_1k_prompt: str = "0",
        price_per_1k_completion: str = "0",
        spike_policy: str = "suspend",
        spike_factor: float = 10,
        spike_floor_tpm: int = 1000,
        actor: str | None = None,
        model_prices: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """Create a plan; :class:`AlreadyExists` if the name is taken.

        Limits left as None are unlimited; ``tools`` None entitles every tool.
        ``spend_per_month``: the tenant's monthly live spend budget in USD (a decimal string,
        at most 6 decimals), stored as ``spend_per_month_micros``.
        ``model_prices``: ``MODEL=PROMPT:COMPLETION[:CACHED[:REASONING]]`` overrides (USD
        per 1M tokens) of models the plan lists (functions/pricing/catalogue.py).
        """
        listed = rules.models(models)
        overrides = _overrides(model_prices, listed)
        plan = Plan(
            name=rules.plan_name(name),
            requests_per_minute=rules.limit("requests per minute", requests_per_minute),
            requests_per_month=rules.limit("requests per month", requests_per_month),
            tokens_per_month=rules.limit("tokens per month", tokens_per_month),
            test_requests_per_month=rules.limit("test requests per month", test_requests_per_month),
            test_tokens_per_month=rules.limit("test tokens per month", test_tokens_per_month),
            counter_shards=rules.counter_shards(counter_shards),
            spend_per_month_micros=rules.spend_micros("spend per month", spend_per_month),
            scopes=rules.scopes(sorted(SCOPES) if scopes is None else scopes),
            models=listed,
            tools=rules.tools(tools),
            price_prompt_micros_per_1k=rules.price_micros(
                "price per 1k prompt tokens", price_per_1k_prompt
            ),
            price_completion_micros_per_1k=rules.price_micros(
                "price per 1k completion tokens", price_per_1k_completion
            ),
            spike_policy=rules.spike_policy(spike_policy),
            spike_factor=rules.spike_factor(spike_factor),
            spike_floor_tpm=rules.limit("spike floor (tokens per minute)", spike_floor_tpm),
            created_at=iso(self.now()),
            model_prices=overrides or None,
        )
        who = rules.actor(actor or default_actor())
        try:
            plan.save(condition=Plan.name.does_not_exist())
        except PutError as exc:
            if _conditional_failed(exc):
                raise AlreadyExists(f"plan {quote(name)} already exists") from None
            raise
        view = plan_view(plan)
        self._audit("plan.created", actor=who, details={"plan": plan.name})
        log.info("plan %s created", plan.name)
        return view

    def list_plans(self) -> list[dict[str, Any]]:
        # The plans table also holds the operator's prices (the reserved "#prices" item).
        plans = (p for p in Plan.scan() if not str(p.name).startswith(RESERVED_PREFIX))
        return sorted((plan_view(p) for p in plans), key=lambda p: p["name"])

    def get_plan(self, name: str) -> dict[str, Any]:
        return plan_view(self._plan(name))
