"""The price catalogue (functions/pricing/catalogue.py): precedence, exact conversion, bad
prices, the genai-prices defaults, the names an invoice may carry, and the token details
each provider reports (functions/api/providers)."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from functions.api.providers import route
from functions.api.providers.base import ModelCall
from functions.api.providers.bedrock import parse_converse, parse_stream
from functions.api.providers.upstream import parse_chunk, parse_response
from functions.api.tools import TOOLS
from functions.pricing import catalogue
from functions.pricing.catalogue import BadPrice, parse_override, parse_usd, resolve
from functions.pricing.money import MAX_PRICE_MICROS, Price, Tokens, cost_micros
from functions.usage.logic import TOOL_NAMES, UsageFact, billable_model

OVERRIDE = Price(1, 2, source="plan-override")
FLAT = Price.per_1k(3, 4)
OPERATOR = {"upstream:gpt-4o": Price(5_000_000, 6_000_000, source="operator")}


# -- precedence ----------------------------------------------------------------------------
def test_a_plan_override_wins_over_everything() -> None:
    assert resolve("upstream:gpt-4o", override=OVERRIDE, flat=FLAT, operator=OPERATOR) is OVERRIDE


def test_a_non_zero_flat_plan_price_wins_over_the_catalogue() -> None:
    """0.1.0 plans bill exactly as before."""
    got = resolve("upstream:gpt-4o", override=None, flat=FLAT, operator=OPERATOR)
    assert (got.prompt, got.completion, got.source) == (3000, 4000, "plan")


def test_a_zero_flat_price_falls_through_to_the_operator() -> None:
    got = resolve("upstream:gpt-4o", override=None, flat=Price(0, 0), operator=OPERATOR)
    assert got is OPERATOR["upstream:gpt-4o"]


def test_without_an_operator_price_the_genai_prices_default_applies() -> None:
    got = resolve("upstream:gpt-4o-mini", override=None, flat=None, operator=OPERATOR)
    # genai-prices 0.2.5: gpt-4o-mini $0.15 / $0.60 per 1M, cached input $0.075
    assert (got.prompt, got.completion, got.cached_prompt, got.source) == (
        150_000, 600_000, 75_000, "genai-prices"
    )  # fmt: skip


def test_bedrock_defaults_match_region_prefixed_and_prefixed_ids() -> None:
    for model in ("bedrock:anthropic.claude-3-haiku-20240307-v1:0",
                  "anthropic.claude-3-haiku-20240307-v1:0",
                  "us.anthropic.claude-3-haiku-20240307-v1:0"):  # fmt: skip
        got = resolve(model, override=None, flat=None, operator={})
        assert (got.prompt, got.completion, got.source) == (250_000, 1_250_000, "genai-prices")


def test_echo_and_unknown_models_are_free() -> None:
    for model in ("tollgate-echo", "upstream:no-such-model-anywhere-xyz"):
        got = resolve(model, override=None, flat=None, operator={})
        assert (got.prompt, got.completion, got.source) == (0, 0, "free")


def test_the_snapshot_names_the_pinned_package() -> None:
    snap = catalogue.snapshot()
    assert (snap.package, snap.version) == ("genai-prices", "0.2.5")
    assert snap.newest_price_date is not None and len(snap.newest_price_date) == 10


# -- exact money ---------------------------------------------------------------------------
def test_usd_per_1m_converts_exactly_to_micros() -> None:
    assert parse_usd("p", "0.15") == 150_000
    assert parse_usd("p", "2.5") == 2_500_000
    assert parse_usd("p", "0.000001") == 1
    assert parse_usd("p", "0") == 0
    assert catalogue.usd_to_micros(Decimal("0.0375")) == 37_500


@pytest.mark.parametrize(
    "value, message",
    [("-1", "negative"), ("abc", "decimal number"), ("nan", "finite"), ("inf", "finite"),
     ("0.0000001", "6 decimals"), (str(MAX_PRICE_MICROS // 1_000_000 + 1), "implausibly"),
     ("", "decimal number")],
)  # fmt: skip
def test_bad_prices_are_refused(value: str, message: str) -> None:
    with pytest.raises(BadPrice, match=message):
        parse_usd("--prompt", value)


def test_cost_is_integer_arithmetic_over_random_prices() -> None:
    """cost_micros with cached and reasoning parts equals the exact rational, rounded half up
    once (compared with Decimal, never a float)."""
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    for _ in range(500):
        price = Price(*(rng.randrange(0, 10**8) for _ in range(4)))
        prompt, completion = rng.randrange(0, 10**6), rng.randrange(0, 10**6)
        tokens = Tokens(prompt, completion, rng.randrange(0, prompt + 1),
                        rng.randrange(0, completion + 1))  # fmt: skip
        exact = (
            Decimal(tokens.prompt - tokens.cached) * price.prompt
            + Decimal(tokens.cached) * price.cached_rate
            + Decimal(tokens.completion - tokens.reasoning) * price.completion
            + Decimal(tokens.reasoning) * price.reasoning_rate
        ) / Decimal(10**6)
        got = cost_micros(price, tokens)
        assert isinstance(got, int)
        assert Decimal(got) - Decimal("0.5") <= exact < Decimal(got) + Decimal("0.5")


# -- plan overrides ------------------------------------------------------------------------
def test_a_price_override_parses_bedrock_ids_with_colons() -> None:
    model, price = parse_override("bedrock:anthropic.claude-3-haiku-20240307-v1:0=0.2:1:0.02:2")
    assert model == "bedrock:anthropic.claude-3-haiku-20240307-v1:0"
    assert (price.prompt, price.completion, price.cached_prompt, price.reasoning) == (
        200_000, 1_000_000, 20_000, 2_000_000
    )  # fmt: skip
    _, two = parse_override("upstream:gpt-4o=1:2")
    assert (two.cached_prompt, two.reasoning, two.source) == (None, None, "plan-override")


@pytest.mark.parametrize(
    "spec, message",
    [("upstream:gpt-4o", "MODEL="), ("upstream:gpt-4o=1", "PROMPT:COMPLETION"),
     ("upstream:gpt-4o=1:2:3:4:5", "PROMPT:COMPLETION"), ("nope=1:2", "unknown model"),
     ("upstream:gpt-4o=1:-2", "negative"), ("upstream:gpt-4o=1:x", "decimal")],
)  # fmt: skip
def test_bad_overrides_are_refused(spec: str, message: str) -> None:
    with pytest.raises(BadPrice, match=message):
        parse_override(spec)


# -- names ---------------------------------------------------------------------------------
def test_routable_agrees_with_the_route_table() -> None:
    """routable = the route table's names a plan may list (functions/keys/rules.py MODEL_NAME)."""
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    names = ["tollgate-echo", "bedrock:", "bedrock:x", "upstream:", "upstream:gpt-4o",
             "anthropic.claude-3", "us.meta.llama3", "nope", "gpt-4o",
             "tool:calculator"]  # fmt: skip
    alphabet = "abcdemnopstu.:-_/#é 0123456789"
    names += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 20)))
              for _ in range(500)]  # fmt: skip
    names += [p + n for p in ("bedrock:", "upstream:", "amazon.", "us.amazon.") for n in names[:50]]
    for name in names:
        listable = catalogue.MODEL_NAME.match(name) is not None
        assert catalogue.routable(name) == (route(name) is not None and listable), name


def test_tool_names_agree_with_the_tools() -> None:
    assert frozenset(TOOLS) == TOOL_NAMES


def test_billable_model_folds_what_nothing_knows() -> None:
    assert billable_model("upstream:gpt-4o") == "upstream:gpt-4o"
    assert billable_model("tool:calculator") == "tool:calculator"
    assert billable_model("-") == "-"
    for made_up in ("tool:nope", "gpt-made-up", "tool:?", "x" * 300, "upstream:" + "y" * 200):
        assert billable_model(made_up) == "unknown"


def test_a_made_up_model_in_an_event_counts_as_unknown() -> None:
    item: dict[str, Any] = {"request_id": "r", "tenant_id": "t", "key_id": "k",
                            "environment": "live", "ts": 1, "model": "tool:nope"}  # fmt: skip
    assert UsageFact.from_item(item).model == "unknown"


# -- token details from the providers --------------------------------------------------------
CALL = ModelCall(model="m", messages=(), max_tokens=100)


def test_openai_usage_details_are_read_and_clamped() -> None:
    body = {"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 50,
                      "prompt_tokens_details": {"cached_tokens": 64},
                      "completion_tokens_details": {"reasoning_tokens": 30}}}  # fmt: skip
    got = parse_response(body, CALL)
    assert (got.prompt_tokens, got.cached_tokens, got.completion_tokens, got.reasoning_tokens) == (
        100, 64, 50, 30
    )  # fmt: skip
    body["usage"]["prompt_tokens_details"] = {"cached_tokens": 500}  # more than the prompt
    body["usage"]["completion_tokens_details"] = {"reasoning_tokens": "x"}  # unreadable
    got = parse_response(body, CALL)
    assert (got.cached_tokens, got.reasoning_tokens) == (100, 0)
    chunk = parse_chunk({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 6,
                                                  "prompt_tokens_details": None,
                                                  "completion_tokens_details":
                                                      {"reasoning_tokens": 2}}})  # fmt: skip
    assert (chunk.prompt_tokens, chunk.cached_tokens, chunk.reasoning_tokens) == (9, 0, 2)


def test_bedrock_cache_reads_and_writes_are_part_of_the_prompt() -> None:
    usage = {"inputTokens": 10, "outputTokens": 5, "cacheReadInputTokens": 80,
             "cacheWriteInputTokens": 20, "totalTokens": 115}  # fmt: skip
    response = {"output": {"message": {"content": [{"text": "ok"}]}}, "usage": usage}
    got = parse_converse(response)
    assert (got.prompt_tokens, got.cached_tokens, got.completion_tokens) == (110, 80, 5)
    [delta] = [d for d in parse_stream([{"metadata": {"usage": usage}}])]
    assert (delta.prompt_tokens, delta.cached_tokens, delta.completion_tokens) == (110, 80, 5)
    plain = parse_converse({**response, "usage": {"inputTokens": 3, "outputTokens": 1}})
    assert (plain.prompt_tokens, plain.cached_tokens) == (3, 0)
