"""Billing export, exactly once (issue 14 item 5): Stripe meter events through the real
``stripe`` SDK against the local Stripe fake (a real HTTP server that refuses a duplicate
identifier), AWS Marketplace through a real boto3 client answered by the Marketplace fake;
the ledger on moto. What each destination received is compared with the statements, after
reruns, crashes mid-run and injected faults, and ``reconcile`` must say drift 0."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from functions.billing import customers
from functions.billing.export import run
from functions.billing.logic import (
    MARKETPLACE_DIMENSIONS,
    STRIPE_EVENT_NAMES,
    hour_start,
    hours_of,
)
from functions.billing.reconcile import reconcile
from functions.billing.sinks import MarketplaceSink, StripeSink
from tests.billing_support import (
    AFTER_MONTH,
    MONTH,
    Crash,
    CrashingSink,
    as_totals,
    billed,
    facts_for,
    random_hours,
    seed,
)
from tollgate.local import aws
from tollgate.local.marketplace_fake import MarketplaceFake
from tollgate.local.stripe_fake import StripeFake

KEY = "sk_test_tollgate0local"
LICENCE = "arn:aws:license-manager::111122223333:license:l-{n:06d}"


@pytest.fixture
def stripe_fake() -> Iterator[StripeFake]:
    with StripeFake() as fake:
        yield fake


@pytest.fixture
def rnd() -> random.Random:
    seed_value = random.SystemRandom().randrange(2**32)
    print(f"billing export seed: {seed_value}")  # replay: random.Random(seed)
    return random.Random(seed_value)


def tenants(n: int) -> list[str]:
    return [f"t{i:03d}" for i in range(n)]


def map_stripe(names: list[str]) -> dict[str, str]:
    for name in names:
        customers.put(name, stripe_customer=f"cus_{name}")
    return {f"cus_{n}": n for n in names}


def map_marketplace(names: list[str]) -> dict[str, str]:
    out = {}
    for i, name in enumerate(names):
        account = f"{100000000000 + i}"
        customers.put(name, marketplace_account=account, marketplace_license=LICENCE.format(n=i))
        out[account] = name
    return out


def received(totals: dict[tuple[str, str], int], names: dict[str, str], by: dict[str, str]):  # type: ignore[no-untyped-def]
    return {by[c]: q for c, q in as_totals(totals, names).items()}


def month_of_usage(names: list[str], rnd: random.Random, hours: int = 20) -> dict[str, Any]:
    facts = [f for t in names for f in facts_for(t, random_hours(rnd, hours), rnd)]
    seed(facts)
    return billed(facts)


def test_stripe_bills_each_unit_once_and_a_rerun_sends_nothing(
    dynamodb: Any, stripe_fake: StripeFake, rnd: random.Random
) -> None:
    names = tenants(4)
    by_customer = map_stripe(names)
    expected = month_of_usage(names, rnd)
    sink = StripeSink(KEY, stripe_fake.url)

    first = run("stripe", MONTH, sink, now_s=AFTER_MONTH).as_dict()
    assert first["ok"] and first["pending"] == 0 and first["duplicates"] == 0
    assert received(stripe_fake.totals(), STRIPE_EVENT_NAMES, by_customer) == expected
    created = stripe_fake.requests["created"]
    assert created == first["sent"] == first["requests"]

    again = run("stripe", MONTH, sink, now_s=AFTER_MONTH).as_dict()
    assert (again["requests"], again["sent"]) == (0, 0)  # nothing asked of Stripe at all
    assert stripe_fake.requests["created"] == created
    result = reconcile("stripe", MONTH, now_s=AFTER_MONTH)
    assert result["ok"] and result["drift"] == 0 and result["compared"]


def test_only_closed_hours_go_out_and_the_rest_is_not_yet_due(
    dynamodb: Any, stripe_fake: StripeFake, rnd: random.Random
) -> None:
    by_customer = map_stripe(["acme"])
    hours = list(hours_of(MONTH))
    facts = facts_for("acme", [hours[100], hours[101], hours[102]], rnd)
    seed(facts)
    # 10 minutes after hour 101 closed: 100 is due, 101 is settling, 102 is open.
    now = hour_start(hours[102]) + 600
    report = run("stripe", MONTH, StripeSink(KEY, stripe_fake.url), now_s=now).as_dict()
    exported = received(stripe_fake.totals(), STRIPE_EVENT_NAMES, by_customer)["acme"]
    assert (
        exported
        == billed(f for f in facts if f.request_id.startswith(f"acme-{hours[100]}"))["acme"]
    )
    assert report["ok"]
    result = reconcile("stripe", MONTH, now_s=now)
    assert result["ok"] and result["drift"] == 0
    assert result["tenants"][0]["not_yet_due"]["requests"] > 0


def test_late_usage_goes_to_stripe_as_a_further_event(
    dynamodb: Any, stripe_fake: StripeFake, rnd: random.Random
) -> None:
    by_customer = map_stripe(["acme"])
    hour = random_hours(rnd, 1)[0]
    first = facts_for("acme", [hour], rnd)
    seed(first)
    sink = StripeSink(KEY, stripe_fake.url)
    run("stripe", MONTH, sink, now_s=AFTER_MONTH)
    late = [f for f in facts_for("acme", [hour], rnd) if f.billable]
    late = [type(f)(**{**{s: getattr(f, s) for s in f.__slots__}, "request_id": f"late-{i}"})
            for i, f in enumerate(late)]  # fmt: skip
    seed(late)
    report = run("stripe", MONTH, sink, now_s=AFTER_MONTH).as_dict()
    assert report["ok"] and report["sent"] == 3  # one adjustment per metric
    assert f"tg:acme:{hour}:tokens:1" in stripe_fake.events
    assert received(stripe_fake.totals(), STRIPE_EVENT_NAMES, by_customer) == billed(first + late)
    assert reconcile("stripe", MONTH, now_s=AFTER_MONTH)["drift"] == 0


@pytest.mark.parametrize("crash_after", [0, 1, 7, 40])
def test_an_exporter_killed_mid_run_then_rerun_bills_exactly_once(
    dynamodb: Any, stripe_fake: StripeFake, rnd: random.Random, crash_after: int
) -> None:
    names = tenants(3)
    by_customer = map_stripe(names)
    expected = month_of_usage(names, rnd, hours=8)
    sink = StripeSink(KEY, stripe_fake.url)
    with pytest.raises(Crash):
        run("stripe", MONTH, CrashingSink(sink, crash_after), now_s=AFTER_MONTH, workers=1)
    assert len(stripe_fake.events) == crash_after  # sent, never committed to the ledger
    rerun = run("stripe", MONTH, sink, now_s=AFTER_MONTH).as_dict()
    assert rerun["ok"]
    # The crashed run's uncommitted meters were re-sent verbatim and refused as duplicates
    # (those of the days it had committed were not sent again at all): billed once.
    assert rerun["duplicates"] == stripe_fake.requests["duplicate"] <= crash_after
    assert received(stripe_fake.totals(), STRIPE_EVENT_NAMES, by_customer) == expected
    result = reconcile("stripe", MONTH, now_s=AFTER_MONTH)
    assert result["ok"] and result["drift"] == 0


def test_stripe_and_ledger_faults_then_reruns_converge_with_drift_zero(
    dynamodb: Any, stripe_fake: StripeFake, moto_server: aws.MotoServer, rnd: random.Random
) -> None:
    names = tenants(3)
    by_customer = map_stripe(names)
    expected = month_of_usage(names, rnd, hours=10)
    sink = StripeSink(KEY, stripe_fake.url, max_network_retries=0)
    # Stripe: 5xx before storing and 5xx after storing (the SDK does not retry here).
    stripe_fake.fail(before=4, after=4)
    faults = moto_server.faults
    try:
        # The ledger: a write-ahead applied but answered 500, and plain refusals.
        faults.next_request("ambiguous", operation="PutItem", table="tollgate-billing", after=2)
        faults.next_request("error", operation="PutItem", table="tollgate-billing", times=4,
                            after=5)  # fmt: skip
        reports = []
        for _ in range(6):
            reports.append(run("stripe", MONTH, sink, now_s=AFTER_MONTH).as_dict())
            if reports[-1]["ok"]:
                break
    finally:
        faults.off()
    assert reports[-1]["ok"], reports[-1]
    assert not reports[0]["ok"]  # the faults did bite
    assert received(stripe_fake.totals(), STRIPE_EVENT_NAMES, by_customer) == expected
    result = reconcile("stripe", MONTH, now_s=AFTER_MONTH)
    assert result["ok"] and result["drift"] == 0, result


# -- AWS Marketplace ----------------------------------------------------------------------


def marketplace(fake: MarketplaceFake) -> MarketplaceSink:
    client = boto3.client("meteringmarketplace", region_name="us-east-1")
    return MarketplaceSink(fake.attach(client), sleep=lambda s: None)


def test_marketplace_once_per_customer_dimension_hour_under_throttling_and_lost_answers(
    dynamodb: Any, rnd: random.Random
) -> None:
    names = tenants(3)
    by_account = map_marketplace(names)
    expected = month_of_usage(names, rnd, hours=30)  # 90 records a tenant: 4 calls of <= 25
    fake = MarketplaceFake(seed=rnd.randrange(2**32), throttle=0.2, unprocessed=0.2, lost=0.1)
    sink = marketplace(fake)
    reports = [run("aws-marketplace", MONTH, sink, now_s=AFTER_MONTH).as_dict()]
    for _ in range(8):
        if reports[-1]["ok"]:
            break
        reports.append(run("aws-marketplace", MONTH, sink, now_s=AFTER_MONTH).as_dict())
    assert reports[-1]["ok"], reports[-1]
    assert received(fake.totals(), MARKETPLACE_DIMENSIONS, by_account) == expected
    assert fake.calls["DuplicateRecord"] == 0  # never a second quantity for an hour
    calls = fake.calls["calls"]
    assert run("aws-marketplace", MONTH, sink, now_s=AFTER_MONTH).as_dict()["requests"] == 0
    assert fake.calls["calls"] == calls
    assert reconcile("aws-marketplace", MONTH, now_s=AFTER_MONTH)["drift"] == 0


def test_marketplace_late_usage_is_reported_not_sent(dynamodb: Any, rnd: random.Random) -> None:
    map_marketplace(["acme"])
    hour = random_hours(rnd, 1)[0]
    seed(facts_for("acme", [hour], rnd))
    fake = MarketplaceFake()
    sink = marketplace(fake)
    run("aws-marketplace", MONTH, sink, now_s=AFTER_MONTH)
    late = [f for f in facts_for("acme", [hour], rnd) if f.billable]
    seed([type(f)(**{**{s: getattr(f, s) for s in f.__slots__}, "request_id": f"late-{i}"})
          for i, f in enumerate(late)])  # fmt: skip
    report = run("aws-marketplace", MONTH, sink, now_s=AFTER_MONTH).as_dict()
    assert report["requests"] == 0 and report["late"] == 3
    result = reconcile("aws-marketplace", MONTH, now_s=AFTER_MONTH)
    assert not result["ok"]
    assert result["drift"] == sum(billed(late)["acme"].values())
