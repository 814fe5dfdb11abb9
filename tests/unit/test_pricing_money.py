"""functions/pricing/money.py: exact integer costs, the worst case bounds every split."""

from __future__ import annotations

import random

import pytest

from functions.pricing.money import FREE, Price, Tokens, cost_micros, usd, worst_case_micros


def test_cost_is_exact_and_rounded_once() -> None:
    price = Price(prompt=2_500_000, completion=10_000_000, cached_prompt=1_250_000)  # $2.5 / $10
    tokens = Tokens(prompt=1000, completion=500, cached=400)
    # 600 x 2.5 + 400 x 1.25 + 500 x 10 = 1500 + 500 + 5000 = 7000 micro-dollars
    assert cost_micros(price, tokens) == 7000
    assert cost_micros(Price(1, 0), Tokens(prompt=500_000)) == 1  # 0.5 rounds half up
    assert cost_micros(Price(1, 0), Tokens(prompt=499_999)) == 0
    assert cost_micros(FREE, Tokens(10**9, 10**9)) == 0


def test_reasoning_defaults_to_the_completion_price() -> None:
    price = Price(prompt=0, completion=4_000_000)
    assert cost_micros(price, Tokens(completion=1000, reasoning=600)) == 4000
    priced = Price(prompt=0, completion=4_000_000, reasoning=8_000_000)
    assert cost_micros(priced, Tokens(completion=1000, reasoning=600)) == 400 * 4 + 600 * 8


def test_worst_case_bounds_every_split() -> None:
    seed = random.randrange(2**32)
    print(f"seed={seed}")
    rnd = random.Random(seed)
    for _ in range(500):
        price = Price(
            prompt=rnd.randrange(0, 20_000_000),
            completion=rnd.randrange(0, 80_000_000),
            cached_prompt=rnd.choice([None, rnd.randrange(0, 30_000_000)]),
            reasoning=rnd.choice([None, rnd.randrange(0, 90_000_000)]),
        )
        pb, cb = rnd.randrange(0, 50_000), rnd.randrange(0, 50_000)
        worst = worst_case_micros(price, pb, cb)
        p, c = rnd.randrange(0, pb + 1), rnd.randrange(0, cb + 1)
        tokens = Tokens(p, c, cached=rnd.randrange(0, p + 1), reasoning=rnd.randrange(0, c + 1))
        assert cost_micros(price, tokens) <= worst


def test_bad_prices_and_tokens_are_refused() -> None:
    with pytest.raises(ValueError):
        Price(prompt=-1, completion=0)
    with pytest.raises(ValueError):
        Price(prompt=0, completion=10**13)
    with pytest.raises(TypeError):
        Price(prompt=1.5, completion=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Tokens(prompt=1, cached=2)
    with pytest.raises(ValueError):
        Tokens(completion=-1)


def test_legacy_per_1k_and_usd() -> None:
    assert Price.per_1k(2500, 10000) == Price(2_500_000, 10_000_000)
    assert usd(1_250) == "0.001250" and usd(12_000_000) == "12.000000" and usd(-5) == "-0.000005"


def test_one_parser_for_every_amount_a_person_types() -> None:
    """Plan prices, catalogue prices and spend budgets all go through money.parse_usd."""
    from functions.keys import rules
    from functions.keys.errors import InvalidInput
    from functions.pricing import catalogue
    from functions.pricing.money import BadAmount, parse_usd

    assert parse_usd("x", "0.000001", maximum=10, example="1") == 1
    assert parse_usd("x", " 12.5 ", maximum=10**9, example="1") == 12_500_000
    for bad in ("-1", "1e400", "nan", "inf", "0.0000001", "abc", "", 1.5, True, "11"):
        with pytest.raises(BadAmount):
            parse_usd("x", bad, maximum=10_000_000, example="1")
    # every caller refuses the same inputs, with its own error type
    for bad in ("-1", "nan", "0.0000001", "abc"):
        with pytest.raises(InvalidInput):
            rules.price_micros("p", bad)
        with pytest.raises(InvalidInput):
            rules.spend_micros("s", bad)
        with pytest.raises(catalogue.BadPrice):
            catalogue.parse_usd("c", bad)
    assert rules.spend_micros("s", "0.01", minimum=1) == 10_000
    assert catalogue.parse_usd("c", "0.15") == 150_000
