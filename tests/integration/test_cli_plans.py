"""``tollgate plans``: create, list, show, and every bad input."""

from __future__ import annotations

import pytest

from functions.common.models import Plan
from functions.common.routes import SCOPES
from tests.integration.conftest import Run

pytestmark = pytest.mark.usefixtures("dynamodb")


def test_create_with_everything(cli: Run) -> None:
    plan = cli(
        "plans", "create", "pro",
        "--requests-per-minute", "600", "--requests-per-month", "100000",
        "--tokens-per-month", "5000000", "--scopes", "inference:invoke,tools:execute",
        "--models", "tollgate-echo,anthropic.claude-3-haiku", "--tools", "search,calc",
        "--price-per-1k-prompt", "0.00025", "--price-per-1k-completion", "0.00125",
        "--spike-policy", "alert", "--spike-factor", "4.5", "--spike-floor-tpm", "200",
    ).ok().json  # fmt: skip
    assert plan["name"] == "pro"
    assert plan["requests_per_minute"] == 600
    assert plan["requests_per_month"] == 100000
    assert plan["tokens_per_month"] == 5000000
    assert plan["scopes"] == ["inference:invoke", "tools:execute"]
    assert plan["models"] == ["anthropic.claude-3-haiku", "tollgate-echo"]
    assert plan["tools"] == ["calc", "search"]
    assert plan["price_per_1k_prompt"] == "0.00025"
    assert plan["price_per_1k_completion"] == "0.00125"
    assert plan["spike_policy"] == "alert"
    assert plan["spike_factor"] == 4.5
    assert plan["spike_floor_tpm"] == 200
    stored = Plan.get("pro")
    assert stored.price_prompt_micros_per_1k == 250
    assert stored.price_completion_micros_per_1k == 1250


def test_defaults(cli: Run) -> None:
    plan = cli("plans", "create", "free").ok().json
    assert plan["requests_per_minute"] is None
    assert plan["requests_per_month"] is None
    assert plan["tokens_per_month"] is None
    assert plan["scopes"] == sorted(SCOPES)
    assert plan["models"] == ["tollgate-echo"]
    assert plan["tools"] is None
    assert plan["price_per_1k_prompt"] == "0"
    assert plan["spike_policy"] == "suspend"
    assert plan["spike_factor"] == 10
    assert plan["spike_floor_tpm"] == 1000


def test_list_and_show(cli: Run) -> None:
    cli("plans", "create", "b").ok()
    cli("plans", "create", "a", "--requests-per-minute", "5").ok()
    rows = cli("plans", "list").ok().json
    assert [r["name"] for r in rows] == ["a", "b"]
    assert cli("plans", "show", "a").ok().json["requests_per_minute"] == 5
    human = cli("plans", "list", json=False).ok().out
    assert "a" in human and "unlimited" in human
    human = cli("plans", "show", "a", json=False).ok().out
    assert "requests_per_minute" in human and "5" in human


def test_list_empty(cli: Run) -> None:
    assert cli("plans", "list").ok().json == []
    assert "(none)" in cli("plans", "list", json=False).ok().out


def test_human_create(cli: Run) -> None:
    out = cli("plans", "create", "starter", json=False).ok().out
    assert "Created plan starter" in out


def test_create_is_audited(cli: Run) -> None:
    cli("plans", "create", "starter").ok()
    rows = cli("audit").ok().json
    assert [(r["action"], r["key_id"], r["tenant_id"]) for r in rows] == [
        ("plan.created", None, None)
    ]
    assert rows[0]["actor"] == "test:operator"
    assert rows[0]["details"]["plan"] == "starter"


def test_duplicate_is_refused(cli: Run, bad_input: Run) -> None:
    cli("plans", "create", "starter", "--requests-per-minute", "1").ok()
    err = bad_input("plans", "create", "starter", "--requests-per-minute", "2").err
    assert "already exists" in err
    assert Plan.get("starter").requests_per_minute == 1


@pytest.mark.parametrize(
    "args",
    [
        ["plans", "create", "bad name"],
        ["plans", "create", "x" * 65],
        ["plans", "create", "p", "--scopes", "admin:all"],
        ["plans", "create", "p", "--scopes", ","],
        ["plans", "create", "p", "--models", "bad model!"],
        ["plans", "create", "p", "--tools", ","],
        ["plans", "create", "p", "--tools", "no spaces"],
        ["plans", "create", "p", "--requests-per-minute", "-1"],
        ["plans", "create", "p", "--requests-per-month", "lots"],
        ["plans", "create", "p", "--tokens-per-month", "1.5"],
        ["plans", "create", "p", "--price-per-1k-prompt", "-0.01"],
        ["plans", "create", "p", "--price-per-1k-prompt", "NaN"],
        ["plans", "create", "p", "--price-per-1k-completion", "0.0000001"],
        ["plans", "create", "p", "--price-per-1k-completion", "ten"],
        ["plans", "create", "p", "--spike-policy", "panic"],
        ["plans", "create", "p", "--spike-factor", "1"],
        ["plans", "create", "p", "--spike-factor", "nan"],
        ["plans", "create", "p", "--spike-floor-tpm", "-5"],
        ["plans", "create"],
        ["plans", "show", "nope"],
        ["plans", "show", "bad name"],
        ["plans", "frobnicate"],
    ],
)
def test_bad_input(bad_input: Run, args: list[str]) -> None:
    bad_input(*args)
