"""Finding 2 of issue 11: one tenant could get another tenant's keys suspended through the
stuffing signal, because a flagged address was evidence against every key seen there.

Here the refusals come the way they do in the stack: requests through the local gateway and
the real authorizer (moto underneath), whose access-log lines feed the real refusals
handler; usage comes through the real stream handler. A shared address (NAT, proxy, CI
runner) gets alerts, never a suspension of a key whose only fault is its address; a
tenant's own scope and environment mistakes are not stuffing at all."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.test import Client

from functions.authorizer import handler as authorizer
from functions.common import ddb
from functions.detector import handler as detector
from functions.detector.actions import Actions
from functions.detector.service import StreamDetector
from functions.detector.store import DetectorStore
from functions.keys import KeyService
from functions.respond.events import KEY_SPIKE_ALERT, KEY_SUSPENDED, SOURCE_STUFFING
from tests.detect_events import LambdaContext, Published, Stream, logs_event, usage_item
from tollgate.local.gateway import LocalGateway

SHARED = "203.0.113.77"  # a NAT / CI runner address both tenants use


class Shared:
    def __init__(self, svc: KeyService, published: Published) -> None:
        self.svc = svc
        self.published = published
        self.stream = Stream()
        self.lines: list[dict[str, Any]] = []
        self.client = Client(LocalGateway(access_log=self.lines.append))

    def call(self, secret: str, path: str = "/v1/models", ip: str = SHARED) -> int:
        response = self.client.get(
            path, headers={"Authorization": f"Bearer {secret}"}, environ_base={"REMOTE_ADDR": ip}
        )
        return int(response.status_code)

    def deliver_access_log(self) -> dict[str, int]:
        """The access-log subscription: every line so far to the refusals handler."""
        refused = [line for line in self.lines if line["status"] in ("401", "403")]
        self.lines.clear()
        now_ms = int(time.time() * 1000)
        return dict(detector.refusals_handler(logs_event(refused, now_ms), LambdaContext()))

    def use(self, key: dict[str, Any], tenant: str, ip: str = SHARED) -> None:
        """Usage events of ``key`` from ``ip`` through the detector's stream handler."""
        now_ms = int(time.time() * 1000)
        items = [
            usage_item(key["key_id"], now_ms + i, tenant=tenant, tokens=50, ip=ip) for i in range(3)
        ]
        response = detector.handler(self.stream.batch(items), LambdaContext())
        assert response["batchItemFailures"] == []

    def status(self, key: dict[str, Any]) -> str:
        return str(self.svc.get_key(key["key_id"])["status"])


@pytest.fixture
def shared(dynamodb: Any) -> Iterator[Shared]:
    ddb.reset_client()
    authorizer._store = None
    svc = KeyService()
    svc.create_plan("starter", spike_factor=10, spike_floor_tpm=1000, actor="test")
    svc.create_tenant("alpha", plan="starter", actor="test")
    svc.create_tenant("beta", plan="starter", actor="test")
    published = Published()
    store = DetectorStore()
    actions = Actions(store=store, service=svc, publisher=published)  # type: ignore[arg-type]
    detector.use_detector(StreamDetector(store, actions))
    yield Shared(svc, published)
    detector.use_detector(None)
    authorizer._store = None


def test_finding_2_another_tenants_revoked_keys_at_a_shared_address_never_suspend_a_key(
    shared: Shared,
) -> None:
    svc = shared.svc
    dead = [svc.create_key("alpha", principal=f"ci-{i}", actor="test") for i in range(20)]
    for key in dead:
        svc.revoke(key_id=key["key_id"], reason="rotated", actor="test")
    for key in dead:  # tenant A's old CI jobs keep retrying their revoked keys
        assert shared.call(key["secret"]) == 403
    assert shared.deliver_access_log() == {"refusals": 20, "findings": 1}
    (flag,) = shared.published.of(SOURCE_STUFFING)
    assert flag["source"] == SHARED and flag["action"] == "alert"  # the address: an alert

    beta = svc.create_key("beta", actor="test")  # tenant B, later, behind the same address
    shared.use(beta, "beta")
    assert shared.status(beta) == "active"
    assert shared.call(beta["secret"]) == 200
    (alert,) = shared.published.of(KEY_SPIKE_ALERT)
    assert alert["key_id"] == beta["key_id"] and alert["signal"] == "stuffing_source"
    assert alert["action"] == "alert"
    assert not shared.published.of(KEY_SUSPENDED)
    assert not [r for r in svc.audit(key_id=beta["key_id"]) if r["action"] == "key.suspended"]


def test_finding_2_a_key_long_used_at_an_address_is_not_suspended_when_it_gets_flagged(
    shared: Shared,
) -> None:
    svc = shared.svc
    regular = svc.create_key("beta", actor="test")
    now_ms = int(time.time() * 1000)
    early = [usage_item(regular["key_id"], now_ms - 3_600_000, tenant="beta", ip=SHARED)]
    detector.handler(shared.stream.batch(early), LambdaContext())  # an hour before
    stuffer = [f"key_{i:016d}" for i in range(25)]  # keys no tenant owns: anyone's concern
    now = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
    lines = [
        {"status": "403", "ip": SHARED, "requestTime": now, "errorType": "ACCESS_DENIED",
         "keyId": k, "decision": "key_revoked", "tenantId": "-"}
        for k in stuffer
    ]  # fmt: skip
    detector.refusals_handler(logs_event(lines, now_ms), LambdaContext())
    shared.use(regular, "beta")
    assert shared.status(regular) == "active"  # it was there before: its address, no more
    (alert,) = shared.published.of(KEY_SPIKE_ALERT)
    assert alert["action"] == "alert" and alert["signal"] == "stuffing_source"


def test_finding_2_a_tenants_own_scope_and_environment_mistakes_are_not_stuffing(
    shared: Shared,
) -> None:
    svc = shared.svc
    narrow = [
        svc.create_key("alpha", principal=f"bot-{i}", scopes=["tools:execute"], actor="test")
        for i in range(15)
    ]
    tests = [svc.create_key("alpha", environment="test", principal=f"t-{i}", actor="test")
             for i in range(15)]  # fmt: skip
    for key in narrow:  # lacks inference:invoke
        assert (
            shared.client.post(
                "/v1/chat/completions",
                headers={"Authorization": f"Bearer {key['secret']}"},
                json={"model": "tollgate-echo", "messages": [{"role": "user", "content": "x"}]},
                environ_base={"REMOTE_ADDR": SHARED},
            ).status_code
            == 403
        )
    for key in tests:  # a test key on a live-only route
        assert shared.call(key["secret"], "/v1/fine_tuning/jobs") == 403
    assert shared.deliver_access_log() == {"refusals": 30, "findings": 0}
    assert not shared.published.events
    beta = svc.create_key("beta", actor="test")
    shared.use(beta, "beta")
    assert shared.status(beta) == "active" and not shared.published.events


def test_finding_2_a_key_found_by_stuffing_is_still_suspended(shared: Shared) -> None:
    """The evidence tied to the key: its own tenant's dead keys tried from an address, and
    the key first used from that address after the trying began."""
    svc = shared.svc
    dead = [svc.create_key("alpha", principal=f"leak-{i}", actor="test") for i in range(20)]
    for key in dead:
        svc.revoke(key_id=key["key_id"], reason="leaked", actor="test")
    for key in dead:
        assert shared.call(key["secret"]) == 403
    shared.deliver_access_log()
    found = svc.create_key("alpha", principal="still-live", actor="test")
    shared.use(found, "alpha")
    assert shared.status(found) == "suspended"
    (event,) = shared.published.of(KEY_SUSPENDED)
    assert event["key_id"] == found["key_id"] and event["signal"] == "stuffing_source"
