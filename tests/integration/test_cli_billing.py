"""``tollgate billing``: map / customers / export / reconcile through the CLI. Bad ids and
options are exit 2 with one line and nothing written; an export against the local Stripe
fake (the real SDK over HTTP) and its rerun; reconcile exits 0 at drift 0, 1 otherwise."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.billing_support import AFTER_MONTH, MONTH, facts_for, random_hours, seed
from tests.integration.conftest import Result, Run
from tollgate.local.stripe_fake import StripeFake

ARN = "arn:aws:license-manager::111122223333:license:l-0123456789abcdef"
Bad = Callable[..., Result]


@pytest.fixture
def stripe_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[StripeFake]:
    with StripeFake() as fake:
        monkeypatch.setenv("TOLLGATE_STRIPE_API_KEY", "sk_test_cli0key")
        monkeypatch.setenv("TOLLGATE_STRIPE_API_BASE", fake.url)
        yield fake


@pytest.mark.parametrize(
    "args",
    [
        ["nobody", "--stripe-customer", "cus_1"],  # unknown tenant
        ["acme"],  # nothing to map
        ["acme", "--stripe-customer", "cust_1"],
        ["acme", "--stripe-customer", "cus_"],
        ["acme", "--marketplace-customer-account", "12345"],  # no licence, short account
        ["acme", "--marketplace-customer-account", "123456789012"],  # no licence
        ["acme", "--marketplace-license-arn", ARN],  # no account
        ["acme", "--marketplace-customer-account", "1234567890x2",
         "--marketplace-license-arn", ARN],
        ["acme", "--marketplace-customer-account", "123456789012",
         "--marketplace-license-arn", "arn:aws:s3:::bucket"],
    ],
)  # fmt: skip
def test_bad_ids_are_refused(tenant: str, bad_input: Bad, args: list[str]) -> None:
    bad_input("billing", "map", *args)


def test_map_then_list(cli: Run, tenant: str) -> None:
    cli("billing", "map", tenant, "--stripe-customer", "cus_Acme1").ok()
    mapped = cli("billing", "map", tenant, "--marketplace-customer-account", "123456789012",
                 "--marketplace-license-arn", ARN).ok().json  # fmt: skip
    assert mapped["stripe_customer_id"] == "cus_Acme1"  # kept
    assert mapped["marketplace_license_arn"] == ARN
    rows = cli("billing", "customers").ok().json
    assert [r["tenant_id"] for r in rows] == [tenant]


@pytest.mark.parametrize(
    "args",
    [
        ["export", "--to", "paypal", "--period", MONTH],
        ["export", "--to", "stripe", "--period", "2026-11-05"],
        ["export", "--to", "stripe", "--period", MONTH, "--tenant", "nobody"],
        ["reconcile", "--to", "stripe", "--period", "November"],
        ["reconcile", "--to", "azure"],
    ],
)
def test_bad_export_options_are_refused(
    tenant: str, stripe_fake: StripeFake, bad_input: Bad, args: list[str]
) -> None:
    bad_input("billing", *args)
    assert stripe_fake.requests.total() == 0


def test_no_stripe_key_is_bad_input(
    tenant: str, bad_input: Bad, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOLLGATE_STRIPE_API_KEY", raising=False)
    result = bad_input("billing", "export", "--to", "stripe", "--period", MONTH)
    assert "TOLLGATE_STRIPE_API_KEY" in result.err
    monkeypatch.setenv("TOLLGATE_STRIPE_API_KEY", "pk_live_publishable")
    result = bad_input("billing", "export", "--to", "stripe", "--period", MONTH)
    assert "pk_live_publishable" not in result.err  # never echoed


def test_export_rerun_and_reconcile(
    cli: Run, tenant: str, stripe_fake: StripeFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    rnd = random.Random(14)
    monkeypatch.setattr("time.time", lambda: float(AFTER_MONTH))
    cli("billing", "map", tenant, "--stripe-customer", "cus_Acme1").ok()
    cli("tenants", "create", "beta", "--plan", "starter").ok()  # not mapped
    seed(facts_for(tenant, random_hours(rnd, 5), rnd))
    first = cli("billing", "export", "--to", "stripe", "--period", MONTH).ok().json
    assert first["ok"] and first["sent"] == len(stripe_fake.events) > 0
    assert first["unmapped"] == ["beta"]
    again = cli("billing", "export", "--to", "stripe", "--period", MONTH).ok().json
    assert again["requests"] == 0
    data: dict[str, Any] = (
        cli("billing", "reconcile", "--to", "stripe", "--period", MONTH).ok().json
    )
    assert data["drift"] == 0 and data["ok"]
    # Usage the export never saw (the ledger says less than the statement): drift, exit 1.
    seed(facts_for(tenant, random_hours(rnd, 1), rnd))
    drifted = cli("billing", "reconcile", "--to", "stripe", "--period", MONTH)
    assert drifted.code == 1 and drifted.json["drift"] > 0
    assert drifted.err.startswith("error: billing drift")


def test_a_key_stripe_refuses_stops_the_export_and_is_never_printed(
    cli: Run, tenant: str, stripe_fake: StripeFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    stripe_fake.api_keys = {"sk_test_theRightOne"}
    monkeypatch.setattr("time.time", lambda: float(AFTER_MONTH))
    cli("billing", "map", tenant, "--stripe-customer", "cus_Acme1").ok()
    seed(facts_for(tenant, random_hours(random.Random(3), 2), random.Random(3)))
    monkeypatch.setenv("TOLLGATE_STRIPE_API_KEY", "sk_test_wrongKey42")
    refused = cli("billing", "export", "--to", "stripe", "--period", MONTH)
    assert refused.code == 1 and "refused the API key" in refused.err
    assert "wrongKey42" not in refused.out + refused.err
    assert len(refused.err.splitlines()) == 1
    monkeypatch.setenv("TOLLGATE_STRIPE_API_KEY", "sk_test_theRightOne")
    done = cli("billing", "export", "--to", "stripe", "--period", MONTH).ok().json
    assert done["ok"] and done["sent"] == len(stripe_fake.events) > 0
