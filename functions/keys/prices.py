"""Operator prices (``tollgate prices set/list``): the catalogue's stored half.

The operator's prices are one item of the plans table, named ``#prices``
(functions/pricing/catalogue.py ``PRICE_BOOK``; ``#`` cannot appear in a plan name, and
plan listing skips it): one ``GetItem`` gives the API every price at once, which it keeps for
a minute per container (functions/api/prices.py). Setting a price is one ``UpdateItem`` of
that model's entry (``SET prices.#model``), so two operators pricing two models at once
lose nothing; an audit record ``price.set`` says who set what. A price set now applies to
requests settled from then on (within the API's cache time); events already written keep
the price they were charged at.
"""

from __future__ import annotations

from typing import Any

from functions.common import ddb
from functions.common.models import Plan
from functions.keys import rules
from functions.keys.audit import AuditMixin, default_actor
from functions.keys.errors import InvalidInput
from functions.keys.views import iso
from functions.pricing import catalogue
from functions.pricing.money import Price, usd


def price_row(model: str, price: Price, snapshot: str | None = None) -> dict[str, Any]:
    """One price as ``prices list`` shows it: USD per 1M tokens, exact decimal strings."""

    def money(micros: int | None) -> str | None:
        return None if micros is None else usd(micros)

    return {
        "model": model,
        "prompt_usd_per_1m": money(price.prompt),
        "completion_usd_per_1m": money(price.completion),
        "cached_prompt_usd_per_1m": money(price.cached_prompt),
        "reasoning_usd_per_1m": money(price.reasoning),
        "source": price.source,
        "snapshot": snapshot if price.source == catalogue.SOURCE_DEFAULT else None,
    }


def _raw(value: Any) -> dict[str, Any]:
    return value.as_dict() if value is not None else {}


class PricesMixin(AuditMixin):
    """Set and list the operator's per-model prices."""

    @staticmethod
    def _price_table() -> str:
        return str(Plan.Meta.table_name)  # bound by bind_tables (--stack)

    def set_price(
        self,
        model: str,
        *,
        prompt: str,
        completion: str,
        cached_prompt: str | None = None,
        reasoning: str | None = None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Store the operator's price of ``model`` (USD per 1M tokens, as typed)."""
        try:
            catalogue.check_model(model)
            cached = (
                None
                if cached_prompt is None
                else catalogue.parse_usd("--cached-prompt", cached_prompt)
            )
            price = Price(
                catalogue.parse_usd("--prompt", prompt),
                catalogue.parse_usd("--completion", completion),
                cached,
                None if reasoning is None else catalogue.parse_usd("--reasoning", reasoning),
                source=catalogue.SOURCE_OPERATOR,
            )
        except catalogue.BadPrice as exc:
            raise InvalidInput(str(exc)) from None
        who = rules.actor(actor or default_actor())
        at = iso(self.now())
        client, table = ddb.client(), self._price_table()
        key = {"name": {"S": catalogue.PRICE_BOOK}}
        # The item and its map first (a map entry cannot be set before the map exists).
        client.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET #p = if_not_exists(#p, :empty), #c = if_not_exists(#c, :at)",
            ExpressionAttributeNames={"#p": "prices", "#c": "created_at"},
            ExpressionAttributeValues={":empty": {"M": {}}, ":at": {"S": at}},
        )
        price_map = catalogue.price_to_map(price)
        entry = {**price_map, "set_at": at, "set_by": who}
        client.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET #p.#m = :v",
            ExpressionAttributeNames={"#p": "prices", "#m": model},
            ExpressionAttributeValues={":v": ddb.to_ddb(entry)},
        )
        self._audit(
            "price.set",
            actor=who,
            details={
                "model": model,
                **{k: str(v) for k, v in catalogue.price_to_map(price).items()},
            },
        )
        return {**price_row(model, price), "set_at": at, "set_by": who}

    def operator_prices(self) -> dict[str, Price]:
        resp = ddb.client().get_item(
            TableName=self._price_table(),
            Key={"name": {"S": catalogue.PRICE_BOOK}},
            ConsistentRead=True,
        )
        item = resp.get("Item")
        return catalogue.operator_prices(ddb.item_from_ddb(item) if item else None)

    def list_prices(self) -> dict[str, Any]:
        """Every price the API may charge at, with its source: operator prices, each plan's
        overrides and flat prices, and the genai-prices defaults of the models plans list and
        of the well-known models (with the package's version and newest price date)."""
        operator = self.operator_prices()
        snap = catalogue.snapshot()
        label = f"{snap.package} {snap.version}"
        plans = [p for p in Plan.scan() if not str(p.name).startswith(catalogue.RESERVED_PREFIX)]
        models = set(operator) | set(catalogue.WELL_KNOWN)
        for plan in plans:
            models |= {str(m) for m in plan.models or []}
        rows = []
        for model in catalogue.listed(models):
            price = operator.get(model)
            if price is None and model != catalogue.ECHO_MODEL:
                price = catalogue.default_price(model)
            if price is not None:
                rows.append(price_row(model, price, label))
        overrides = []
        for plan in sorted(plans, key=lambda p: str(p.name)):
            flat = Price.per_1k(
                int(plan.price_prompt_micros_per_1k or 0),
                int(plan.price_completion_micros_per_1k or 0),
            )
            if flat.prompt or flat.completion:
                overrides.append({"plan": plan.name, **price_row("*", flat)})
            for model, value in sorted(_raw(plan.model_prices).items()):
                price = catalogue.price_from_map(value, catalogue.SOURCE_OVERRIDE)
                overrides.append({"plan": plan.name, **price_row(model, price)})
        return {
            "prices": rows,
            "plan_prices": overrides,
            "genai_prices": {
                "package": snap.package,
                "version": snap.version,
                "newest_price_date": snap.newest_price_date,
            },
            "precedence": [
                catalogue.SOURCE_OVERRIDE,
                catalogue.SOURCE_PLAN,
                catalogue.SOURCE_OPERATOR,
                catalogue.SOURCE_DEFAULT,
                catalogue.SOURCE_FREE,
            ],
        }
