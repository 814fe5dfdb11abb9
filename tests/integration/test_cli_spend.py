"""Spend budgets in the CLI (docs/cli.md, docs/billing.md "Spend budgets"): ``plans create
--spend-per-month USD``, ``keys delegate --spend-budget USD``, what ``plans show``, ``keys
show`` and ``tenants show`` print, and every bad amount refused (exit 2, nothing written)."""

from __future__ import annotations

import pytest

from functions.common.models import Key, Plan
from functions.gate import admin
from functions.gate import items as it
from tests import gate_support
from tests.integration.conftest import Run

pytestmark = pytest.mark.usefixtures("dynamodb")


def test_plan_spend_per_month_is_shown_as_usd_and_micros(cli: Run) -> None:
    plan = cli("plans", "create", "metered", "--spend-per-month", "250.5").ok().json
    assert plan["spend_per_month"] == "250.500000"
    assert plan["spend_per_month_micros"] == 250_500_000
    assert Plan.get("metered").spend_per_month_micros == 250_500_000
    assert cli("plans", "show", "metered").ok().json["spend_per_month_micros"] == 250_500_000
    assert cli("plans", "create", "free").ok().json["spend_per_month"] is None
    human = cli("plans", "show", "free", json=False).ok().out
    assert "spend_per_month" in human and "unlimited" in human


def test_the_tenants_live_shards_carry_the_spend_limit_and_test_shards_none(cli: Run) -> None:
    cli("plans", "create", "metered", "--spend-per-month", "0.000100", "--counter-shards",
        "4").ok()  # fmt: skip
    cli("tenants", "create", "acme", "--plan", "metered").ok()
    live = gate_support.view("acme")["shards"]
    assert sorted(int(s[it.SPEND_ALLOC]) for s in live) == [25, 25, 25, 25]
    assert all(int(s[it.SPEND]) == 0 and int(s[it.SPEND_LIMIT]) == 100 for s in live)
    test = gate_support.view("acme", env="test")["shards"]
    assert all(it.SPEND_LIMIT not in s and it.SPEND_ALLOC not in s for s in test)
    gate_support.set_shard("acme", sp=7)
    shown = cli("tenants", "show", "acme").ok().json
    assert shown["month_spend"] == "0.000007" and shown["spend_per_month"] == "0.000100"
    assert shown["counters"]["live"]["spend_micros"] == 7
    assert shown["counters"]["live"]["spend_limit_micros"] == 100
    assert shown["counters"]["test"]["spend_limit_micros"] is None


def test_a_plan_change_reallocates_spend_from_what_was_spent(cli: Run) -> None:
    cli("plans", "create", "small", "--spend-per-month", "0.000100", "--counter-shards", "2").ok()
    cli("plans", "create", "big", "--spend-per-month", "0.001000").ok()
    cli("tenants", "create", "acme", "--plan", "small").ok()
    gate_support.set_shard("acme", index=1, sp=30)
    cli("tenants", "set-plan", "acme", "big").ok()
    shards = gate_support.view("acme")["shards"]
    assert sum(int(s[it.SPEND_ALLOC]) for s in shards) == 1000
    assert admin.shard_totals(gate_support.table(), "acme", "live")["spend_micros"] == 30


def test_delegated_key_spend_budget_and_what_it_spent(cli: Run) -> None:
    cli("plans", "create", "starter").ok()
    cli("tenants", "create", "acme", "--plan", "starter").ok()
    parent = cli("keys", "create", "--tenant", "acme").ok().json["key_id"]
    child = cli("keys", "delegate", parent, "--principal", "agent", "--spend-budget",
                "5").ok().json  # fmt: skip
    assert child["spend_budget"] == "5.000000" and child["spend_budget_micros"] == 5_000_000
    assert Key.get(child["key_id"]).spend_budget_micros == 5_000_000
    gate_support.set_key("acme", child["key_id"], su=1_250_000)
    shown = cli("keys", "show", child["key_id"]).ok().json
    assert (shown["spend_spent"], shown["spend_budget"]) == ("1.250000", "5.000000")
    assert shown["spend_spent_micros"] == 1_250_000
    item = gate_support.view("acme")["gate"][child["key_id"]]
    assert int(item[it.SPEND_BUDGET]) == 5_000_000
    plain = cli("keys", "show", parent).ok().json
    assert plain["spend_budget"] is None and "spend_spent" not in plain
    human = cli("keys", "delegate", parent, "--principal", "b", "--spend-budget", "0.5",
                json=False).ok().out  # fmt: skip
    assert "spend_budget" in human and "0.500000" in human


@pytest.mark.parametrize(
    "amount",
    ["-1", "ten", "NaN", "inf", "0.0000001", "1e10", "1000000000.000001", "", "$5", "1,5"],
)
def test_bad_spend_per_month_is_refused(bad_input: Run, amount: str) -> None:
    err = bad_input("plans", "create", "p", "--spend-per-month", amount).err
    assert "spend per month" in err


@pytest.mark.parametrize("amount", ["-0.5", "0", "0.0000001", "abc", "99999999999", "-inf"])
def test_bad_spend_budget_is_refused(cli: Run, bad_input: Run, amount: str) -> None:
    cli("plans", "create", "starter").ok()
    cli("tenants", "create", "acme", "--plan", "starter").ok()
    parent = cli("keys", "create", "--tenant", "acme").ok().json["key_id"]
    err = bad_input("keys", "delegate", parent, "--principal", "a", "--spend-budget", amount).err
    assert "spend budget" in err


def test_the_service_refuses_a_bad_spend_budget_in_micros(cli: Run) -> None:
    from functions.keys import InvalidInput, KeyService

    svc = KeyService()
    svc.create_plan("starter", actor="t")
    svc.create_tenant("acme", plan="starter", actor="t")
    parent = svc.create_key("acme", actor="t")["key_id"]
    for bad in (0, -5, 10**16, True, 1.5):
        with pytest.raises(InvalidInput):
            svc.delegate_key(parent, principal="a", spend_budget_micros=bad)  # type: ignore[arg-type]
