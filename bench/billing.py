"""Billing export bench: a month of usage for 100 tenants exported to the local Stripe fake
through the real ``stripe`` SDK, then exported again.

Figures: requests to the Stripe fake per tenant-hour with usage (3 metrics: at most 3),
meter events created by the second run (target 0), reconcile drift (target 0), and the
same month to the Marketplace fake: records per BatchMeterUsage call and calls on a rerun.
Rollups are seeded directly (tests/billing_support.py). Usage: each tenant is active in
``HOURS_PER_TENANT`` seeded-random hours of the month (a month of every hour for 100
tenants would be 216,000 HTTP requests: ~30 minutes on this machine's 2 cores).
"""

from __future__ import annotations

import os
import random
import time

from bench.common import Section

TENANTS = int(os.environ.get("TOLLGATE_BENCH_BILLING_TENANTS", "100"))
HOURS_PER_TENANT = int(os.environ.get("TOLLGATE_BENCH_BILLING_HOURS", "48"))
SEED = 1405


def run() -> Section:
    import boto3

    from functions.billing import customers
    from functions.billing.export import run as export
    from functions.billing.reconcile import reconcile
    from functions.billing.sinks import MarketplaceSink, StripeSink
    from tests.billing_support import AFTER_MONTH, MONTH, facts_for, random_hours, seed
    from tollgate.local.marketplace_fake import MarketplaceFake
    from tollgate.local.stripe_fake import StripeFake

    sec = Section("billing")
    rnd = random.Random(SEED)
    names = [f"bill{i:03d}" for i in range(TENANTS)]
    tenant_hours = 0
    t_seed = time.perf_counter()
    for i, name in enumerate(names):
        hours = random_hours(rnd, HOURS_PER_TENANT)
        tenant_hours += len(hours)
        seed(facts_for(name, hours, rnd), fresh=True)
        customers.put(
            name,
            stripe_customer=f"cus_{name}",
            marketplace_account=f"{200000000000 + i}",
            marketplace_license=f"arn:aws:license-manager::111122223333:license:l-{i:06d}",
        )
    print(f"  seeded {tenant_hours:,} tenant-hours in {time.perf_counter() - t_seed:.0f} s")
    with StripeFake() as fake:
        sink = StripeSink("sk_test_bench0key", fake.url)
        t0 = time.perf_counter()
        first = export("stripe", MONTH, sink, now_s=AFTER_MONTH).as_dict()
        seconds = time.perf_counter() - t0
        created = fake.requests["created"]
        sec.add(
            f"Stripe: requests to the fake per tenant-hour ({TENANTS} tenants, a month)",
            round(sum(fake.requests.values()) / tenant_hours, 3),
            unit="requests",
            target="<= 3 (one per metric)",
            ok=sum(fake.requests.values()) <= 3 * tenant_hours,
            baseline=f"{tenant_hours:,} tenant-hours, {created:,} meter events in {seconds:.0f} s",
        )
        t0 = time.perf_counter()
        second = export("stripe", MONTH, sink, now_s=AFTER_MONTH).as_dict()
        rerun_s = time.perf_counter() - t0
        sec.add(
            "Stripe: new meter events from a second run of the same month",
            fake.requests["created"] - created,
            unit="events",
            target="0",
            ok=fake.requests["created"] == created and second["requests"] == 0,
            baseline=f"first run {first['sent']:,} sent; rerun {rerun_s:.1f} s, "
            f"{second['requests']} requests",
        )
        drift = reconcile("stripe", MONTH, now_s=AFTER_MONTH)["drift"]
        sec.add("Stripe: reconcile drift after both runs", drift, target="0", ok=drift == 0)
    fake_mp = MarketplaceFake(seed=SEED)
    client = fake_mp.attach(boto3.client("meteringmarketplace", region_name="us-east-1"))
    mp = MarketplaceSink(client)
    first = export("aws-marketplace", MONTH, mp, now_s=AFTER_MONTH).as_dict()
    calls = mp.calls
    sec.add(
        "Marketplace: records per BatchMeterUsage call",
        round(first["sent"] / max(calls, 1), 1),
        unit="records",
        target="<= 25",
        ok=first["sent"] <= 25 * calls,
        baseline=f"{first['sent']:,} records in {calls:,} calls (a tenant's meters together)",
    )
    export("aws-marketplace", MONTH, mp, now_s=AFTER_MONTH)
    sec.add(
        "Marketplace: BatchMeterUsage calls from a second run",
        mp.calls - calls,
        unit="calls",
        target="0",
        ok=mp.calls == calls,
    )
    return sec
