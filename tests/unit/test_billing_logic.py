"""The billing export's pure parts: due hours, identifiers, what a tenant-hour plans."""

from __future__ import annotations

import pytest

from functions.billing.customers import validate
from functions.billing.logic import (
    BillingInputError,
    Entry,
    check_destination,
    check_month,
    hour_start,
    hours_of,
    identifier,
    is_due,
    plan_hour,
)
from functions.usage.logic import Counters


def test_hours_of_a_month_and_when_they_are_due() -> None:
    hours = list(hours_of("2026-11"))
    assert len(hours) == 30 * 24 and hours[0] == "2026-11-01T00" and hours[-1] == "2026-11-30T23"
    end = hour_start("2026-11-05T13") + 3600
    assert not is_due("2026-11-05T13", end + 29 * 60)
    assert is_due("2026-11-05T13", end + 30 * 60)


def test_identifiers_are_deterministic_and_fit_stripe() -> None:
    assert identifier("acme", "2026-11-05T13", "tokens", 0) == "tg:acme:2026-11-05T13:tokens"
    assert identifier("acme", "2026-11-05T13", "tokens", 2) == "tg:acme:2026-11-05T13:tokens:2"
    assert len(identifier("t" * 64, "2026-11-05T13", "cost_micros", 99_999)) <= 100


def test_plan_sends_only_what_is_missing_and_never_zero() -> None:
    counters = Counters(requests=5, prompt_tokens=100, completion_tokens=20, cost_micros=0)
    meters, late = plan_hour("acme", "2026-11-05T13", counters, {}, deltas=True)
    assert [(m.metric, m.seq, m.value) for m in meters] == [("requests", 0, 5), ("tokens", 0, 120)]
    ledger = {"requests": Entry(5, 1, "sent"), "tokens": Entry(100, 1, "sent")}
    meters, late = plan_hour("acme", "2026-11-05T13", counters, ledger, deltas=True)
    assert [(m.metric, m.seq, m.value) for m in meters] == [("tokens", 1, 20)]
    meters, late = plan_hour("acme", "2026-11-05T13", counters, ledger, deltas=False)
    assert meters == [] and late == {"tokens": 20}


@pytest.mark.parametrize("bad", ["paypal", "", "Stripe"])
def test_bad_destinations(bad: str) -> None:
    with pytest.raises(BillingInputError):
        check_destination(bad)


@pytest.mark.parametrize("bad", ["2026-11-05", "2026-13", "nov", ""])
def test_bad_months(bad: str) -> None:
    with pytest.raises(BillingInputError):
        check_month(bad)


@pytest.mark.parametrize(
    "args",
    [(None, None, None), ("cus", None, None), (None, "123456789012", None),
     (None, "1234", "arn:aws:license-manager::1:license:l-1"),
     (None, "123456789012", "arn:aws:iam::123456789012:role/x")],
)  # fmt: skip
def test_bad_customer_ids(args: tuple[str | None, str | None, str | None]) -> None:
    with pytest.raises(BillingInputError):
        validate(*args)
