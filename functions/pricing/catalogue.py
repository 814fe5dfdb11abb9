"""The price catalogue: default prices from ``genai-prices``, operator prices, and the rules
that say which model names a price (or an invoice line) may carry.

Three sources of a model's price, resolved in this order by :func:`resolve` (the request
path asks through ``functions/api/prices.py``):

1. the plan's own override for the model (``plans create --price MODEL=P:C[:CACHED[:R]]``);
2. the plan's flat 0.1.0 price per 1,000 tokens, when either of its two prices is non-zero
   (so a 0.1.0 plan bills exactly as before);
3. the operator's catalogue price (``tollgate prices set``), stored in one reserved item of
   the plans table (:data:`PRICE_BOOK`, never a plan: plan names cannot hold ``#``);
4. the default of the pinned ``genai-prices`` package for a well-known OpenAI
   (``upstream:<model>``) or Bedrock model (``bedrock:<id>`` or a bare Bedrock id);
5. free (0): tollgate-echo, and any model nobody priced.

All prices are integer micro-dollars per 1M tokens (functions/pricing/money.py);
``genai-prices`` gives USD per 1M as ``Decimal``, converted exactly (a price with more than
six decimals per 1M tokens is rounded half up once, here, and shown as such in ``prices
list``). The package is imported only when a default is first asked for (its data module is
1.6 MB of Python), and its answers are cached per model for the life of the process: a
snapshot never changes while it runs.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from functions.pricing.money import MAX_PRICE_MICROS, MICROS_PER_USD, BadAmount, Price
from functions.pricing.money import parse_usd as parse_usd_amount

# The reserved plans-table item that holds the operator's prices (attribute ``prices``: a
# map model -> {prompt, completion, cached_prompt?, reasoning?, set_at}). '#' is not allowed
# in a plan name (functions/keys/rules.py), so no plan can collide with it.
PRICE_BOOK: Final = "#prices"
RESERVED_PREFIX: Final = "#"

ECHO_MODEL: Final = "tollgate-echo"
UNKNOWN: Final = "unknown"  # the one invoice line for names no catalogue or route knows
BEDROCK_PREFIX: Final = "bedrock:"
UPSTREAM_PREFIX: Final = "upstream:"
_BEDROCK_VENDORS: Final = (
    "ai21|amazon|anthropic|cohere|deepseek|meta|mistral|openai|qwen|stability|twelvelabs|writer"
)
# Kept equal to functions/api/providers/__init__.py BEDROCK_ID (a unit test checks they agree):
# the usage function must not import the API's providers.
BEDROCK_ID: Final = re.compile(rf"^(?:[a-z]{{2,4}}\.)?(?:{_BEDROCK_VENDORS})\.[A-Za-z0-9._:-]+$")
MODEL_NAME: Final = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")

# Models whose genai-prices defaults ``prices list`` shows even when no plan lists them.
WELL_KNOWN: Final = (
    "upstream:gpt-4o",
    "upstream:gpt-4o-mini",
    "upstream:gpt-4.1",
    "upstream:gpt-4.1-mini",
    "upstream:o3",
    "upstream:o4-mini",
    "upstream:text-embedding-3-small",
    "bedrock:anthropic.claude-3-haiku-20240307-v1:0",
    "bedrock:anthropic.claude-3-5-sonnet-20240620-v1:0",
    "bedrock:meta.llama3-1-8b-instruct-v1:0",
    "bedrock:amazon.nova-micro-v1:0",
    "bedrock:amazon.titan-embed-text-v2:0",
)

SOURCE_OVERRIDE: Final = "plan-override"
SOURCE_PLAN: Final = "plan"
SOURCE_OPERATOR: Final = "operator"
SOURCE_DEFAULT: Final = "genai-prices"
SOURCE_FREE: Final = "free"


def routable(model: str) -> bool:
    """True for a name the route table sends somewhere (functions/api/providers)."""
    if not MODEL_NAME.match(model):
        return False
    if model == ECHO_MODEL:
        return True
    for prefix in (BEDROCK_PREFIX, UPSTREAM_PREFIX):
        if model.startswith(prefix):
            return len(model) > len(prefix)
    return BEDROCK_ID.match(model) is not None


def provider_ref(model: str) -> tuple[str, str] | None:
    """(genai-prices provider id, model ref) of a routable Tollgate model id, or None."""
    if model.startswith(UPSTREAM_PREFIX):
        return "openai", model[len(UPSTREAM_PREFIX) :]
    bare = model[len(BEDROCK_PREFIX) :] if model.startswith(BEDROCK_PREFIX) else model
    if BEDROCK_ID.match(bare):
        return "aws", bare  # genai-prices matches region prefixes (us., global.) itself
    return None


def usd_to_micros(value: Decimal | str | int) -> int:
    """USD (per 1M tokens) as integer micro-dollars, rounded half up once."""
    amount = Decimal(str(value)) * MICROS_PER_USD
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


BadPrice = BadAmount  # a price given by a person that cannot be a price (exit 2 in the CLI)


def parse_usd(name: str, value: str | Decimal | int | None) -> int:
    """USD per 1M tokens, as typed, to micro-dollars per 1M (functions/pricing/money.py
    ``parse_usd``: no rounding, no negatives, nothing above :data:`MAX_PRICE_MICROS`)."""
    return parse_usd_amount(
        name, value, maximum=MAX_PRICE_MICROS, example="0.15", unit="per 1M tokens"
    )


def check_model(model: str) -> str:
    """A model a price may be set for: one the route table knows (exit 2 otherwise)."""
    if not routable(model):
        shown = model[:64] + ("..." if len(model) > 64 else "")
        raise BadPrice(
            f"unknown model {shown!r}: price a model Tollgate can route (tollgate-echo, "
            "bedrock:<id>, a Bedrock id such as anthropic.claude-3-haiku-20240307-v1:0, "
            "upstream:<model>)"
        )
    return model


def price_from_map(value: Mapping[str, Any], source: str) -> Price:
    """A stored price (a map of micro-dollar numbers) as a :class:`Price`."""

    def opt(name: str) -> int | None:
        raw = value.get(name)
        return None if raw is None else int(raw)

    return Price(
        int(value["prompt"]), int(value["completion"]), opt("cached_prompt"), opt("reasoning"),
        source=source,
    )  # fmt: skip


def price_to_map(price: Price) -> dict[str, int]:
    out = {"prompt": price.prompt, "completion": price.completion}
    if price.cached_prompt is not None:
        out["cached_prompt"] = price.cached_prompt
    if price.reasoning is not None:
        out["reasoning"] = price.reasoning
    return out


def parse_override(text: str) -> tuple[str, Price]:
    """``MODEL=PROMPT:COMPLETION[:CACHED[:REASONING]]`` (USD per 1M) of ``plans create
    --price``. The model may hold ``:`` (Bedrock ids do): the prices are the last parts."""
    model, sep, spec = text.rpartition("=")
    if not sep or not model:
        raise BadPrice(
            f"--price takes MODEL=PROMPT:COMPLETION[:CACHED[:REASONING]] (USD per 1M), "
            f"not {text[:80]!r}"
        )
    parts = spec.split(":")
    if not 2 <= len(parts) <= 4:
        raise BadPrice(
            f"--price {model[:64]!r}: give PROMPT:COMPLETION[:CACHED[:REASONING]] in USD per 1M"
        )
    check_model(model)
    names = ("prompt", "completion", "cached prompt", "reasoning")
    micros: list[int | None] = [
        parse_usd(f"{n} price of {model[:64]}", p) for n, p in zip(names, parts, strict=False)
    ]
    micros += [None] * (4 - len(micros))
    prompt, completion = int(micros[0] or 0), int(micros[1] or 0)
    return model, Price(prompt, completion, micros[2], micros[3], source=SOURCE_OVERRIDE)


# -- genai-prices ------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """Which genai-prices data the defaults come from."""

    package: str
    version: str
    newest_price_date: str | None  # the latest start date of any price it holds


@functools.lru_cache(maxsize=1)
def snapshot() -> Snapshot:
    from importlib.metadata import version

    from genai_prices import data  # the bundled snapshot

    newest = None
    for provider in data.providers:
        for model in provider.models:
            prices = model.prices if isinstance(model.prices, list) else []
            for conditional in prices:
                start = getattr(getattr(conditional, "constraint", None), "start_date", None)
                if start is not None:
                    day = start.isoformat()[:10]
                    newest = day if newest is None or day > newest else newest
    return Snapshot("genai-prices", version("genai-prices"), newest)


def _rate(value: Any) -> int | None:
    if value is None:
        return None
    base = getattr(value, "base", value)  # TieredPrices: the price below the first tier
    micros = usd_to_micros(base)
    return micros if 0 <= micros <= MAX_PRICE_MICROS else None


@functools.lru_cache(maxsize=1024)
def default_price(model: str) -> Price | None:
    """genai-prices' standard price of ``model`` today, or None when it does not know it.

    Cached per model for the process (the bundled snapshot never changes while it runs)."""
    ref = provider_ref(model)
    if ref is None:
        return None
    provider_id, model_ref = ref
    from datetime import UTC, datetime

    from genai_prices import data_snapshot

    try:
        _, info = data_snapshot.get_snapshot().find_provider_model(
            model_ref, None, provider_id, None
        )
    except LookupError:
        return None
    prices = info.get_prices(datetime.now(tz=UTC))
    prompt = _rate(getattr(prices, "input_mtok", None))
    completion = _rate(getattr(prices, "output_mtok", None))
    if prompt is None and completion is None:
        return None
    return Price(
        prompt or 0,
        completion or 0,
        _rate(getattr(prices, "cache_read_mtok", None)),
        _rate(getattr(prices, "output_reasoning_mtok", None)),
        source=SOURCE_DEFAULT,
    )


def resolve(
    model: str,
    *,
    override: Price | None,
    flat: Price | None,
    operator: Mapping[str, Price],
) -> Price:
    """The precedence of the module docstring, in one place."""
    if override is not None:
        return override
    if flat is not None and (flat.prompt or flat.completion):
        return flat
    found = operator.get(model)
    if found is not None:
        return found
    if model != ECHO_MODEL:
        default = default_price(model)
        if default is not None:
            return default
    return Price(0, 0, source=SOURCE_FREE)


def operator_prices(item: Mapping[str, Any] | None) -> dict[str, Price]:
    """The operator's prices from the price book item (None: no price set yet)."""
    out: dict[str, Price] = {}
    for model, value in ((item or {}).get("prices") or {}).items():
        try:
            out[str(model)] = price_from_map(value, SOURCE_OPERATOR)
        except (KeyError, TypeError, ValueError):
            continue  # a hand-edited entry that is no price: ignored, never a crash
    return out


def listed(models: Iterable[str]) -> list[str]:
    """Distinct routable models, sorted."""
    return sorted({m for m in models if routable(m)})
