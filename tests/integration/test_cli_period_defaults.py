"""Finding 6 of issue 11: ``--period`` of ``statement`` and ``usage reconcile`` defaults to
the current UTC month, and ``usage reconcile`` over a period with nothing in it says so
instead of passing for a clean reconciliation ("drift 0 (0 events compared)").

The clock is pinned (``tollgate.cli.context.utc_now``) so no run straddles a month end."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from functions.common import ddb
from functions.common.config import TableNames
from functions.usage import handler as usage_handler
from tests.integration.conftest import Run
from tests.usage_support import Context, lambda_event, stream_record, usage_item
from tollgate.cli import context


def pin_clock(monkeypatch: pytest.MonkeyPatch, when: str) -> None:
    at = datetime.fromisoformat(when).replace(tzinfo=UTC)
    monkeypatch.setattr(context, "utc_now", lambda: at)


@pytest.fixture
def november(cli: Run, dynamodb: Any) -> list[dict[str, Any]]:
    """Tenant acme with three live usage events in 2026-11, rolled up by the aggregator."""
    cli("plans", "create", "gold").ok()
    cli("tenants", "create", "acme", "--plan", "gold").ok()
    ddb.reset_client()
    usage_handler.use_store(None)
    items = [usage_item(n, plan="gold") for n in range(3)]
    for item in items:
        dynamodb.put_item(
            TableName=TableNames().usage,
            Item={k: ddb.to_ddb(v) for k, v in item.items() if v is not None},
        )
    seq = 7_000_000_000_000_000_000_000
    records = [stream_record(item, seq + n) for n, item in enumerate(items)]
    assert usage_handler.handler(lambda_event(records), Context())["batchItemFailures"] == []
    usage_handler.use_store(None)
    return items


def test_current_month_is_utc_year_and_month() -> None:
    assert len(context.current_month()) == 7 and context.current_month()[4] == "-"


def test_reconcile_defaults_to_the_current_utc_month(
    cli: Run, november: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    pin_clock(monkeypatch, "2026-11-30T23:59:59")
    report = cli("usage", "reconcile", "--tenant", "acme").ok().json
    assert report["period"] == "2026-11" and report["events"] == 3 and report["compared"]
    explicit = cli("usage", "reconcile", "--tenant", "acme", "--period", "2026-11").ok().json
    assert report == explicit


def test_statement_defaults_to_the_current_utc_month(
    cli: Run, november: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    pin_clock(monkeypatch, "2026-11-01T00:00:00")
    statement = cli("statement", "--tenant", "acme").ok().json
    assert statement["period"] == "2026-11" and statement["totals"]["requests"] == 3
    explicit = cli("statement", "--tenant", "acme", "--period", "2026-11").ok().json
    assert statement["line_items"] == explicit["line_items"]


def test_reconcile_of_an_empty_period_says_nothing_was_compared(
    cli: Run, november: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    pin_clock(monkeypatch, "2027-03-15T12:00:00")
    report = cli("usage", "reconcile", "--tenant", "acme").ok().json  # exit 0: no drift
    assert report["period"] == "2027-03"
    assert report["compared"] is False and report["events"] == report["items_compared"] == 0
    human = cli("usage", "reconcile", "--tenant", "acme", json=False).ok()
    assert "nothing to compare" in human.out and "drift" not in human.out
    clean = cli("usage", "reconcile", "--tenant", "acme", "--period", "2026-11", json=False)
    assert "drift 0" in clean.ok().out and "nothing to compare" not in clean.out
