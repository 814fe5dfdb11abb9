"""Helpers for the billing export's tests and bench (a plain module, no fixtures): seed the
rollups a month of usage leaves (every item the aggregator would write, from
``functions.usage.logic.aggregate``), and an exporter sink that dies mid-run."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

from functions.billing.customers import Customer
from functions.billing.logic import Meter, hour_start, hours_of
from functions.billing.sinks import Outcome, Sink
from functions.usage.logic import Counters, UsageFact, aggregate

MONTH = "2026-11"
AFTER_MONTH = hour_start("2026-12-01T02")  # every hour of November is due


def facts_for(
    tenant: str, hours: Iterable[str], rnd: random.Random, per_hour: int = 3
) -> list[UsageFact]:
    """A few live usage events in each of ``hours`` (and one test-key event, never billed)."""
    facts = []
    for hour in hours:
        base = hour_start(hour) * 1000
        for i in range(rnd.randint(1, per_hour)):
            facts.append(
                UsageFact(
                    request_id=f"{tenant}-{hour}-{i}",
                    tenant_id=tenant,
                    key_id=f"key_{i % 2}",
                    principal=f"svc{i % 2}",
                    environment="live",
                    model="tollgate-echo",
                    plan="pro",
                    ts_ms=base + rnd.randrange(3_600_000),
                    prompt_tokens=rnd.randint(1, 2000),
                    completion_tokens=rnd.randint(0, 500),
                    cost_micros=rnd.randint(0, 90_000),
                    error=rnd.random() < 0.05,
                )
            )
        facts.append(
            UsageFact(f"{tenant}-{hour}-test", tenant, "key_t", "svc", "test", "tollgate-echo",
                      "pro", base + 1, 99, 99, 999)
        )  # fmt: skip
    return facts


def seed(facts: Sequence[UsageFact], *, fresh: bool = False) -> None:
    """Add ``facts`` to the rollups table, as the aggregator would (ADD per measure).
    ``fresh``: the tenants have no rollups yet, so whole items are put, 25 per request."""
    from functions.common import ddb
    from functions.common.config import TableNames

    table = TableNames.from_env().rollups
    client = ddb.client()
    if fresh:
        puts = [
            {"PutRequest": {"Item": {
                "tenant_id": {"S": key.tenant_id}, "sk": {"S": key.sk},
                **{m: {"N": str(v)} for m, v in counters.as_dict().items()},
            }}}
            for key, counters in aggregate(facts).items()
        ]  # fmt: skip
        for i in range(0, len(puts), 25):
            batch = {table: puts[i : i + 25]}
            while batch:
                batch = client.batch_write_item(RequestItems=batch).get("UnprocessedItems")
        return
    for key, counters in aggregate(facts).items():
        measures = counters.as_dict()
        client.update_item(
            TableName=table,
            Key={"tenant_id": {"S": key.tenant_id}, "sk": {"S": key.sk}},
            UpdateExpression="ADD " + ", ".join(f"#{m} :{m}" for m in measures),
            ExpressionAttributeNames={f"#{m}": m for m in measures},
            ExpressionAttributeValues={f":{m}": {"N": str(v)} for m, v in measures.items()},
        )


def random_hours(rnd: random.Random, n: int, period: str = MONTH) -> list[str]:
    return sorted(rnd.sample(list(hours_of(period)), n))


def billed(facts: Iterable[UsageFact]) -> dict[str, dict[str, int]]:
    """What the statements bill per tenant and metric (live events only)."""
    out: dict[str, Counters] = {}
    for f in facts:
        if f.billable:
            out.setdefault(f.tenant_id, Counters()).add(Counters.of(f))
    return {
        t: {"requests": c.requests, "tokens": c.prompt_tokens + c.completion_tokens,
            "cost_micros": c.cost_micros}
        for t, c in out.items()
    }  # fmt: skip


class Crash(BaseException):
    """The exporter's process dies (not an Exception: nothing in the exporter catches it)."""


class CrashingSink:
    """Passes meters to ``inner`` one by one and dies after ``after`` of them were sent: the
    worst moment, the destination has them and the ledger does not know."""

    def __init__(self, inner: Sink, after: int) -> None:
        self.inner = inner
        self.destination = inner.destination
        self.left = after

    def send(self, customer: Customer, meters: Sequence[Meter]) -> dict[str, Outcome]:
        out: dict[str, Outcome] = {}
        for meter in meters:
            if self.left <= 0:
                raise Crash("exporter killed mid-run")
            out.update(self.inner.send(customer, [meter]))
            self.left -= 1
        return out


def as_totals(fake_totals: dict[tuple[str, str], int], names: dict[str, str]) -> dict[str, Any]:
    """A fake's totals per (customer, event name / dimension) as {customer: {metric: n}}."""
    back = {v: k for k, v in names.items()}
    out: dict[str, dict[str, int]] = {}
    for (customer, name), value in fake_totals.items():
        out.setdefault(customer, {"requests": 0, "tokens": 0, "cost_micros": 0})[back[name]] = value
    return out
