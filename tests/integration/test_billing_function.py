"""The scheduled billing export function: the Stripe key from Secrets Manager (moto), the
months it exports from the schedule's time, never the key in a log line or a result, and
two exporters at once still bill each unit once."""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from functions.billing import config, customers, handler
from functions.billing.export import run
from functions.billing.logic import STRIPE_EVENT_NAMES, hour_start
from functions.billing.reconcile import reconcile
from functions.billing.sinks import StripeSink
from tests.billing_support import MONTH, as_totals, billed, facts_for, random_hours, seed
from tollgate.local.stripe_fake import StripeFake

KEY = "sk_live_FunctionSecret0123456789"


@pytest.fixture
def stripe_fake() -> Iterator[StripeFake]:
    with StripeFake() as fake:
        yield fake


class _Ctx:
    function_name = "BillingExport"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:BillingExport"
    aws_request_id = "req-billing-1"


def test_the_schedule_exports_last_months_closing_hours_with_the_key_from_secrets_manager(
    dynamodb: Any,
    stripe_fake: StripeFake,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rnd = random.Random(1405)
    secret = boto3.client("secretsmanager").create_secret(Name="stripe-key", SecretString=KEY)
    monkeypatch.setenv(config.ENV_STRIPE_SECRET_ARN, secret["ARN"])
    monkeypatch.setenv(config.ENV_STRIPE_API_BASE, stripe_fake.url)
    monkeypatch.setenv(config.ENV_DESTINATIONS, "stripe")
    monkeypatch.delenv(config.ENV_STRIPE_API_KEY, raising=False)
    config._secret_cache.clear()
    customers.put("acme", stripe_customer="cus_acme")
    facts = facts_for("acme", [*random_hours(rnd, 5), "2026-11-30T23"], rnd)
    seed(facts)
    caplog.set_level(logging.INFO)  # what the function logs at (LOG_LEVEL); botocore DEBUG
    # would print the GetSecretValue response: never run the function at DEBUG
    # 00:15 on the 1st: November's last hour is not due yet (00:30); 00:45: it is.
    early = handler.handler({"time": "2026-12-01T00:15:00Z"}, _Ctx())
    assert [r["period"] for r in early["runs"]] == ["2026-11", "2026-12"]
    late = handler.handler({"time": "2026-12-01T00:45:00Z"}, _Ctx())
    assert late["ok"] and late["runs"][0]["sent"] == 3  # the last hour's three metrics
    assert as_totals(stripe_fake.totals(), STRIPE_EVENT_NAMES) == {
        "cus_acme": billed(facts)["acme"]
    }
    out, err = capsys.readouterr()
    everything = out + err + caplog.text + json.dumps([early, late])
    assert KEY not in everything and KEY[:12] not in everything
    assert reconcile("stripe", MONTH, now_s=hour_start("2026-12-01T02"))["drift"] == 0


def test_an_empty_secret_is_a_clear_failure(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = boto3.client("secretsmanager").create_secret(Name="stripe-empty", SecretString=" ")
    config._secret_cache.clear()
    with pytest.raises(config.StripeKeyMissing, match="empty"):
        config.stripe_api_key({config.ENV_STRIPE_SECRET_ARN: secret["ARN"]})


def test_two_exporters_at_once_bill_each_unit_once(dynamodb: Any, stripe_fake: StripeFake) -> None:
    rnd = random.Random(7)
    names = [f"t{i}" for i in range(4)]
    facts = []
    for name in names:
        customers.put(name, stripe_customer=f"cus_{name}")
        facts += facts_for(name, random_hours(rnd, 12), rnd)
    seed(facts)
    now = hour_start("2026-12-01T02")
    sink = StripeSink("sk_test_concurrent", stripe_fake.url)
    reports: list[dict[str, Any]] = []

    def export() -> None:
        reports.append(run("stripe", MONTH, sink, now_s=now).as_dict())

    threads = [threading.Thread(target=export) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for _ in range(3):  # what a refused writer left to the next run
        if run("stripe", MONTH, sink, now_s=now).as_dict()["ok"]:
            break
    expected = {f"cus_{t}": q for t, q in billed(facts).items()}
    assert as_totals(stripe_fake.totals(), STRIPE_EVENT_NAMES) == expected
    assert reconcile("stripe", MONTH, now_s=now)["drift"] == 0
