"""The exposure report on moto, through the logic and through ``tollgate exposure``."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from functions.common.models import UsageEvent
from functions.keys import InvalidInput, KeyService, NotFound
from functions.respond.exposure import report
from tests.detect_events import usage_item
from tests.integration.conftest import Run

NOW = time.time()
HOUR = 3600.0
DAY = 86_400.0


def put(key: dict[str, Any], age_s: float, *, ip: str, tokens: int = 100, cost: int = 0) -> None:
    item = usage_item(
        key["key_id"],
        int((NOW - age_s) * 1000),
        tenant=key["tenant_id"],
        tokens=tokens,
        ip=ip,
        cost=cost,
        env=key["environment"],
    )
    UsageEvent(**item).save()


@pytest.fixture
def leaked(dynamodb: Any) -> dict[str, Any]:
    svc = KeyService()
    svc.create_plan("starter", actor="test")
    svc.create_tenant("acme", plan="starter", actor="test")
    key = svc.create_key("acme", principal="svc", actor="test")
    child = svc.delegate_key(key["key_id"], principal="agent-7", actor="test")
    put(key, 40 * DAY, ip="10.0.0.40", tokens=5)  # outside 30 days: first use only
    put(key, 20 * DAY, ip="10.0.0.20", tokens=1000, cost=2_000_000)
    put(key, 3 * DAY, ip="10.0.0.3", tokens=300, cost=300_000)
    put(key, 2 * HOUR, ip="203.0.113.9", tokens=50, cost=1_500)
    put(key, 1 * HOUR, ip="203.0.113.9", tokens=50, cost=1_500)
    put(child, 1 * HOUR, ip="198.51.100.1")  # the child's use is the child's
    return {"key": key, "child": child}


def test_what_a_leaked_key_could_do_and_did(leaked: dict[str, Any]) -> None:
    key, child = leaked["key"], leaked["child"]
    r = report(key_id=key["key_id"], now=NOW)
    assert r["environment"] == "live" and r["billable"] is True
    assert (r["tenant_id"], r["principal"]) == ("acme", "svc")
    assert r["status"] == r["gate_status"] == "active"
    assert r["scopes"] == key["scopes"]
    assert [c["key_id"] for c in r["children"]] == [child["key_id"]]
    assert r["children"][0]["principal"] == "agent-7"
    assert r["first_use"] < r["last_use"]
    assert r["first_use"].startswith(time.strftime("%Y-%m-%d", time.gmtime(NOW - 40 * DAY)))
    u = r["usage"]
    assert [u[w]["requests"] for w in ("24h", "7d", "30d")] == [2, 3, 4]
    assert u["24h"]["prompt_tokens"] + u["24h"]["completion_tokens"] == u["24h"]["tokens"] == 100
    assert u["30d"]["tokens"] == 1400
    assert (u["24h"]["cost_usd"], u["30d"]["cost_usd"]) == ("0.003", "2.303")
    assert r["distinct_sources_30d"] == 3
    assert r["sources"][0] == {
        "ip": "203.0.113.9",
        "requests": 2,
        "last_seen": r["last_use"],
    }
    assert r["complete"] is True
    assert key["secret"] not in json.dumps(r)


def test_by_secret_and_after_revocation(leaked: dict[str, Any]) -> None:
    key = leaked["key"]
    assert report(secret=key["secret"], now=NOW)["key_id"] == key["key_id"]
    KeyService().revoke(key_id=key["key_id"], reason="leak", actor="test")
    r = report(secret=key["secret"], now=NOW)
    assert r["status"] == r["gate_status"] == "revoked"
    assert r["children"][0]["status"] == "revoked"


def test_a_test_key_is_not_billable(dynamodb: Any) -> None:
    svc = KeyService()
    svc.create_plan("starter", actor="test")
    svc.create_tenant("acme", plan="starter", actor="test")
    key = svc.create_key("acme", environment="test", actor="test")
    r = report(key_id=key["key_id"], now=NOW)
    assert r["billable"] is False and r["first_use"] is None and r["last_use"] is None
    assert r["usage"]["30d"]["requests"] == 0 and r["sources"] == []


def test_a_busy_key_is_reported_as_far_as_was_read(leaked: dict[str, Any]) -> None:
    r = report(key_id=leaked["key"]["key_id"], now=NOW, max_events=2)
    assert r["complete"] is False and r["counted_since"]
    assert r["usage"]["24h"]["requests"] == 2  # the newest windows stay exact


def test_bad_input(dynamodb: Any) -> None:
    with pytest.raises(InvalidInput):
        report(now=NOW)
    with pytest.raises(InvalidInput):
        report(secret="tg_live_not-a-key", now=NOW)
    with pytest.raises(NotFound):
        report(key_id="key_AAAAAAAAAAAAAAAA", now=NOW)


def test_cli_exposure(cli: Run, leaked: dict[str, Any]) -> None:
    key = leaked["key"]
    by_id = cli("exposure", key["key_id"]).ok().json
    assert by_id["key_id"] == key["key_id"] and by_id["usage"]["30d"]["requests"] == 4
    by_secret = cli("exposure", "--secret", "-", input=key["secret"] + "\n").ok()
    assert by_secret.json["key_id"] == key["key_id"]
    assert key["secret"] not in by_secret.out + by_secret.err
    human = cli("exposure", key["key_id"], json=False).ok().out
    assert "billable live key" in human and "203.0.113.9" in human and "agent-7" in human
    assert key["secret"] not in human


def test_cli_exposure_bad_input(bad_input: Any, leaked: dict[str, Any]) -> None:
    bad_input("exposure")
    bad_input("exposure", leaked["key"]["key_id"], "--secret", leaked["key"]["secret"])
    out = bad_input("exposure", "--secret", "tg_live_0000")
    assert "tg_live_0000" not in out.err
    bad_input("exposure", "key_AAAAAAAAAAAAAAAA")
