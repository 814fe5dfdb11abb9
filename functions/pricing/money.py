"""Prices and costs, exact: integer micro-dollars, no floats anywhere.

A :class:`Price` is what one model costs, in micro-dollars (1e-6 USD) per 1,000,000 tokens,
for each kind of token a provider reports:

* ``prompt`` - an input token read fresh;
* ``cached_prompt`` - an input token served from the provider's prompt cache (OpenAI
  ``prompt_tokens_details.cached_tokens``, Bedrock ``cacheReadInputTokens``); absent: the
  prompt price;
* ``completion`` - an output token;
* ``reasoning`` - an output token spent on hidden reasoning (OpenAI
  ``completion_tokens_details.reasoning_tokens``); absent: the completion price.

:class:`Tokens` follows OpenAI's convention: ``cached`` is a part of ``prompt`` and
``reasoning`` a part of ``completion`` (a provider that reports them apart, as Bedrock does
for cache reads, is normalised into this shape by its adapter).

The cost of one request is computed once, at settle, from the price fixed into its usage
event (a later price change never rewrites history), and rounded half up once per request:
``sum(tokens x price) / 1e6`` micro-dollars. :func:`worst_case_micros` is what a spend
budget reserves before the call: every prompt token at the dearer of the two prompt prices,
every completion token at the dearer of the two completion prices, rounded up, so the
settled cost can never exceed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final

MICROS_PER_USD: Final = 1_000_000
TOKENS_PER_PRICE: Final = 1_000_000  # prices are per 1M tokens
MAX_PRICE_MICROS: Final = 10**12  # a million dollars per 1M tokens: a typo, not a price


@dataclass(frozen=True, slots=True)
class Price:
    """Micro-dollars per 1M tokens; ``None`` for a kind the model prices as its parent kind."""

    prompt: int
    completion: int
    cached_prompt: int | None = None
    reasoning: int | None = None
    source: str = "plan"  # where it came from: plan | catalogue | operator | genai-prices

    def __post_init__(self) -> None:
        for name in ("prompt", "completion", "cached_prompt", "reasoning"):
            value = getattr(self, name)
            if value is None and name in ("cached_prompt", "reasoning"):
                continue
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int of micro-dollars, not {value!r}")
            if not 0 <= value <= MAX_PRICE_MICROS:
                raise ValueError(f"{name} must be between 0 and {MAX_PRICE_MICROS} micro-dollars")

    @property
    def cached_rate(self) -> int:
        return self.prompt if self.cached_prompt is None else self.cached_prompt

    @property
    def reasoning_rate(self) -> int:
        return self.completion if self.reasoning is None else self.reasoning

    @classmethod
    def per_1k(cls, prompt_micros_per_1k: int, completion_micros_per_1k: int) -> Price:
        """A 0.1.0 plan price (micro-dollars per 1,000 tokens) in per-1M units."""
        return cls(int(prompt_micros_per_1k) * 1000, int(completion_micros_per_1k) * 1000)


FREE: Final = Price(0, 0, source="free")


@dataclass(frozen=True, slots=True)
class Tokens:
    """One request's tokens. ``cached`` is part of ``prompt``; ``reasoning`` of ``completion``."""

    prompt: int = 0
    completion: int = 0
    cached: int = 0
    reasoning: int = 0

    def __post_init__(self) -> None:
        if min(self.prompt, self.completion, self.cached, self.reasoning) < 0:
            raise ValueError("token counts cannot be negative")
        if self.cached > self.prompt or self.reasoning > self.completion:
            raise ValueError("cached tokens are part of the prompt, reasoning of the completion")

    @property
    def total(self) -> int:
        return self.prompt + self.completion


def _exact(price: Price, tokens: Tokens) -> int:
    """The cost in units of 1e-12 USD (micro-dollars x 1e-6): exact, an integer."""
    return (
        (tokens.prompt - tokens.cached) * price.prompt
        + tokens.cached * price.cached_rate
        + (tokens.completion - tokens.reasoning) * price.completion
        + tokens.reasoning * price.reasoning_rate
    )


def cost_micros(price: Price, tokens: Tokens) -> int:
    """What ``tokens`` cost at ``price``, in micro-dollars, rounded half up once."""
    return (_exact(price, tokens) + TOKENS_PER_PRICE // 2) // TOKENS_PER_PRICE


def worst_case_micros(price: Price, prompt_bound: int, completion_bound: int) -> int:
    """The most a call of at most these many tokens can cost (rounded up): a spend budget's
    reservation. Never less than :func:`cost_micros` of any split within the bounds."""
    exact = prompt_bound * max(price.prompt, price.cached_rate) + completion_bound * max(
        price.completion, price.reasoning_rate
    )
    return -(-exact // TOKENS_PER_PRICE)


def usd(micros: int) -> str:
    """Micro-dollars as a USD string with six decimals (``"0.001250"``), exact."""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(int(micros)), MICROS_PER_USD)
    return f"{sign}{whole}.{frac:06d}"


class BadAmount(ValueError):
    """An amount of USD typed by a person that cannot be one (exit 2 in the CLI)."""


def parse_usd(name: str, value: object, *, maximum: int, example: str, unit: str = "") -> int:
    """USD as typed (a decimal string, or a Decimal / int) to integer micro-dollars, exactly.

    The one parser of money a person types (plan prices, catalogue prices, spend budgets):
    refuses booleans and floats (never exact), non-numbers, non-finite values, negatives, more
    than six decimals (money is never rounded silently) and more than ``maximum``
    micro-dollars (a typo, not an amount). ``unit`` follows "USD" in messages (e.g.
    "per 1M tokens"); ``example`` is a well-formed value shown when the input is not one.
    """
    what = f"USD {unit}".strip()
    if isinstance(value, bool | float):
        raise BadAmount(f"{name} must be a decimal number of {what}, e.g. {example}")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise BadAmount(f"{name} must be a decimal number of {what}, e.g. {example}") from None
    if not amount.is_finite():
        raise BadAmount(f"{name} must be a finite number of {what}")
    if amount < 0:
        raise BadAmount(f"{name} must not be negative")
    micros = amount * MICROS_PER_USD
    if micros != micros.to_integral_value():
        raise BadAmount(f"{name} has more than 6 decimals (USD is counted in micro-dollars)")
    if micros > maximum:
        raise BadAmount(
            f"{name} is implausibly large (more than {usd(maximum).rstrip('0').rstrip('.')} {what})"
        )
    return int(micros)
