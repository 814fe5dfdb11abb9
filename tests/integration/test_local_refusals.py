"""The local twin of the access-log subscription: refusals at the local gateway reach the
spike detector, which flags a source that tries many refused keys (credential stuffing)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from werkzeug.test import Client

from functions.common import ddb
from functions.detector import handler as detector_handler
from functions.keys.service import KeyService
from tollgate.local.gateway import LocalGateway
from tollgate.local.refusals import RefusalFeed


@pytest.fixture
def feed(dynamodb: Any) -> Any:
    ddb.reset_client()
    detector_handler._detector = None
    f = RefusalFeed().start()
    yield f
    f.stop()
    detector_handler._detector = None


def test_refused_keys_from_one_source_flag_it(feed: RefusalFeed, monkeypatch: Any) -> None:
    findings: list[Any] = []
    real = detector_handler.detector()
    original = real.process_refusals

    def spy(refusals: Any) -> Any:
        out = original(refusals)
        findings.extend(out)
        return out

    monkeypatch.setattr(real, "process_refusals", spy)
    svc = KeyService()
    svc.create_plan("p")
    svc.create_tenant("acme", plan="p")
    keys = [svc.create_key("acme") for _ in range(25)]
    svc.revoke(tenant_id="acme", reason="test", actor="test")
    lines: list[dict[str, Any]] = []

    def access_log(line: dict[str, Any]) -> None:
        lines.append(line)
        feed.put(line)

    client = Client(LocalGateway(access_log=access_log))
    for k in keys:
        resp = client.get("/v1/models", headers={"Authorization": f"Bearer {k['secret']}"})
        assert resp.status_code == 403
    deadline = time.time() + 15
    while feed.delivered < len(keys) and time.time() < deadline:
        time.sleep(0.1)
    assert feed.delivered == len(keys) and feed.dropped == 0
    assert {line["errorType"] for line in lines} == {"ACCESS_DENIED"}
    assert {line["keyId"] for line in lines} == {k["key_id"] for k in keys}
    assert all(k["secret"] not in str(lines) for k in keys)
    assert any(f.kind == "source" and f.signal.startswith("stuffing") for f in findings), findings


def test_allowed_requests_are_not_fed(feed: RefusalFeed) -> None:
    feed.put({"status": "200", "ip": "127.0.0.1"})
    feed.put({"status": "429", "ip": "127.0.0.1"})
    time.sleep(0.8)
    assert feed.delivered == 0
