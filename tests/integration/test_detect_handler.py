"""The spike detector end to end on moto: usage stream events in, a conditional suspension,
the audit record with its evidence and the event out, and the authorizer refusing the key's
next request with 403 ``key_suspended``; replays, partial failures, reinstatement, the plan's
policy, and the stuffing signal from the access logs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
)

from functions.authorizer import handler as authorizer
from functions.common import ddb
from functions.common.models import DetectorState
from functions.common.routes import route_for
from functions.detector import handler as detector
from functions.detector.actions import Actions
from functions.detector.logic import MINUTE_MS
from functions.detector.service import StreamDetector
from functions.detector.store import FLAGS_ID, DetectorStore
from functions.keys import KeyService
from functions.respond.events import KEY_SPIKE_ALERT, KEY_SUSPENDED, SOURCE_STUFFING
from tests.authorizer_events import request_event
from tests.detect_events import LambdaContext, Published, Stream, logs_event, usage_item

_CHAT = route_for("POST", "/v1/chat/completions")
assert _CHAT
CHAT = _CHAT


@dataclass
class World:
    svc: KeyService
    key: dict[str, Any]
    published: Published
    stream: Stream
    store: DetectorStore

    @property
    def key_id(self) -> str:
        return str(self.key["key_id"])

    def feed(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return detector.handler(self.stream.batch(items), LambdaContext())

    def verdict(self, secret: str | None = None) -> str:
        event = APIGatewayAuthorizerRequestEvent(
            request_event(CHAT, {"Authorization": f"Bearer {secret or self.key['secret']}"})
        )
        decision, _ = authorizer.decide(event, time.time())
        return decision.code if not decision.admitted else "allow"

    def audit(self, action: str) -> list[dict[str, Any]]:
        return [r for r in self.svc.audit(key_id=self.key_id) if r["action"] == action]


def minute_start(offset_min: int = 0) -> int:
    return (int(time.time() * 1000) // MINUTE_MS + offset_min) * MINUTE_MS


def burst(key_id: str, start_ms: int, n: int = 25, tokens: int = 3000, **kw: Any) -> list[Any]:
    """``n`` requests of ``tokens`` within a few seconds of ``start_ms``."""
    return [usage_item(key_id, start_ms + 1000 + i * 100, tokens=tokens, **kw) for i in range(n)]


@pytest.fixture
def world(dynamodb: Any) -> Iterator[World]:
    ddb.reset_client()
    authorizer._store = None
    svc = KeyService()
    svc.create_plan("starter", spike_factor=10, spike_floor_tpm=1000, actor="test")
    svc.create_tenant("acme", plan="starter", actor="test")
    key = svc.create_key("acme", principal="svc", actor="test")
    published = Published()
    store = DetectorStore()
    actions = Actions(store=store, service=svc, publisher=published)  # type: ignore[arg-type]
    detector.use_detector(StreamDetector(store, actions))
    yield World(svc, key, published, Stream(), store)
    detector.use_detector(None)
    authorizer._store = None


def test_a_surge_suspends_the_key_and_its_next_request_gets_403(world: World) -> None:
    assert world.verdict() == "allow"
    response = world.feed(burst(world.key_id, minute_start()))
    assert response == {"batchItemFailures": [], "state": {}}

    assert world.verdict() == "key_suspended"
    (audit,) = world.audit("key.suspended")
    assert audit["actor"] == "tollgate-detector"
    evidence = audit["details"]["evidence"]
    assert evidence["signal"] == "token_spike"
    assert evidence["observed"] > evidence["threshold"] >= 1000
    assert {"start", "end"} <= set(evidence["window"]) and evidence["baseline"] > 0
    (event,) = world.published.of(KEY_SUSPENDED)
    assert event["key_id"] == world.key_id and event["tenant_id"] == "acme"
    assert event["action"] == "suspended" and event["incident_id"]
    assert world.key["secret"] not in json.dumps(world.published.events)
    assert world.svc.get_key(world.key_id)["status"] == "suspended"


def test_a_replayed_batch_changes_nothing(world: World) -> None:
    batch = world.stream.batch(burst(world.key_id, minute_start()))
    assert detector.handler(batch, LambdaContext())["batchItemFailures"] == []
    state = DetectorState.get(world.key_id).state.as_dict()
    for _ in range(2):  # Lambda delivers the same records again
        assert detector.handler(batch, LambdaContext())["batchItemFailures"] == []
    assert DetectorState.get(world.key_id).state.as_dict()["r"] == state["r"]
    assert len(world.audit("key.suspended")) == 1
    assert len(world.published.of(KEY_SUSPENDED)) == 1


def test_a_sustained_spike_after_the_learning_day_suspends(world: World) -> None:
    two_days_ago = minute_start(-3 * 1440)
    history = [
        usage_item(world.key_id, two_days_ago + m * MINUTE_MS + 5000, tokens=80)
        for m in range(0, 2 * 1440, 20)
    ]
    world.feed(history)
    assert world.verdict() == "allow"
    spike_start = minute_start(-3 * 1440 + 2 * 1440 + 10)
    first = [usage_item(world.key_id, spike_start + i * 2000, tokens=160) for i in range(25)]
    world.feed(first)  # one hot minute: could be noise
    assert world.verdict() == "allow"
    second = [
        usage_item(world.key_id, spike_start + MINUTE_MS + i * 2000, tokens=160) for i in range(25)
    ]
    world.feed(second)  # the next minute is hot too: sustained
    assert world.verdict() == "key_suspended"
    (audit,) = world.audit("key.suspended")
    assert audit["details"]["evidence"]["signal"] == "token_spike"
    assert audit["details"]["evidence"]["observed"] < 5 * audit["details"]["evidence"]["threshold"]


def test_a_key_a_human_reinstated_is_not_suspended_again_for_the_same_window(world: World) -> None:
    start = minute_start()
    world.feed(burst(world.key_id, start))
    assert world.verdict() == "key_suspended"
    world.svc.reinstate(world.key_id, reason="known batch job", actor="test:oncall")
    assert world.verdict() == "allow"

    world.feed(burst(world.key_id, start + MINUTE_MS))  # the same incident goes on
    world.feed(burst(world.key_id, start + 90 * MINUTE_MS, n=40))  # after the cooldown, too
    assert world.verdict() == "allow"
    assert len(world.audit("key.suspended")) == 1
    assert len(world.published.of(KEY_SUSPENDED)) == 1
    state = DetectorState.get(world.key_id).state.as_dict()
    assert state["hold"] >= (start // MINUTE_MS) + 700  # held for the hold period (12 h)


def test_alert_policy_alerts_without_suspending(world: World) -> None:
    world.svc.create_plan("watch", spike_policy="alert", actor="test")
    world.feed(burst(world.key_id, minute_start(), plan="watch"))
    assert world.verdict() == "allow"
    assert world.audit("key.suspended") == []
    (alert,) = world.published.of(KEY_SPIKE_ALERT)
    assert alert["key_id"] == world.key_id and alert["action"] == "alert"
    assert alert["policy"]["mode"] == "alert"


def test_off_policy_does_nothing_and_keeps_no_state(world: World) -> None:
    world.svc.create_plan("quiet", spike_policy="off", actor="test")
    world.feed(burst(world.key_id, minute_start(), plan="quiet", n=60))
    assert world.verdict() == "allow"
    assert world.published.events == []
    assert DetectorState.count() == 0


def test_nothing_below_the_floor_fires(world: World) -> None:
    start = minute_start()
    # 999 tokens a minute (floor 1000) from 25 requests, for ten minutes
    items = [
        usage_item(world.key_id, start + m * MINUTE_MS + i * 1000, tokens=39 + (i < 24))
        for m in range(10)
        for i in range(25)
    ]
    world.feed(items)
    assert world.verdict() == "allow" and world.published.events == []


def test_partial_failure_reports_only_the_failed_keys_records(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = world.svc.create_key("acme", principal="other", actor="test")
    quiet = [usage_item(other["key_id"], minute_start() + i * 10, tokens=10) for i in range(3)]
    spike = burst(world.key_id, minute_start())
    real_act = Actions.act

    def failing(self: Actions, finding: Any, engine: Any, state: Any = None) -> str:
        raise RuntimeError("the bus is down")

    monkeypatch.setattr(Actions, "act", failing)
    event = world.stream.event(world.stream.record(i) for i in quiet + spike)
    response = detector.handler(event, LambdaContext())
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    seqs = [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]
    assert failed == set(seqs[3:])  # the spiking key's records only
    assert DetectorState.get(other["key_id"]).state.as_dict()["r"] == 3

    monkeypatch.setattr(Actions, "act", real_act)
    # Lambda delivers again from the lowest failed record: the quiet key's are skipped
    retry = world.stream.event(event["Records"][3:])
    assert detector.handler(retry, LambdaContext())["batchItemFailures"] == []
    again = detector.handler(event, LambdaContext())  # even the whole batch, once more
    assert again["batchItemFailures"] == []
    assert DetectorState.get(other["key_id"]).state.as_dict()["r"] == 3
    assert world.verdict() == "key_suspended"
    assert len(world.audit("key.suspended")) == 1


def test_records_that_are_not_usage_events_are_skipped(world: World) -> None:
    good = usage_item(world.key_id, minute_start(), tokens=5)
    records = [
        world.stream.record(good, event_name="MODIFY"),
        world.stream.record({"request_id": "x", "ts": "not a number"}),
        world.stream.record(good),
    ]
    response = detector.handler(world.stream.event(records), LambdaContext())
    assert response["batchItemFailures"] == []
    assert DetectorState.get(world.key_id).state.as_dict()["r"] == 1
    foreign = world.stream.record(usage_item(world.key_id, minute_start(), tokens=5))
    foreign["eventSourceARN"] = foreign["eventSourceARN"].replace("tollgate-usage", "other")
    assert (
        detector.handler(world.stream.event([foreign]), LambdaContext())["batchItemFailures"] == []
    )
    assert DetectorState.get(world.key_id).state.as_dict()["r"] == 1  # ignored
    closing = {"Records": [], "shardId": world.stream.shard, "isFinalInvokeForWindow": True}
    assert detector.handler(closing, LambdaContext()) == {"batchItemFailures": [], "state": {}}


def _access_line(ip: str, status: str, key_id: str | None = None) -> dict[str, Any]:
    return {
        "requestId": "r",
        "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
        "ip": ip,
        "status": status,
        "errorType": "UNAUTHORIZED" if status == "401" else "ACCESS_DENIED",
        "keyId": key_id or "-",
        "decision": "" if status == "401" else "key_revoked",
    }


def test_a_stuffing_source_gets_the_keys_it_uses_suspended(world: World) -> None:
    stuffer = "203.0.113.66"
    lines = [_access_line(stuffer, "403", f"key_{i:016d}") for i in range(25)]
    result = detector.refusals_handler(logs_event(lines, minute_start()), LambdaContext())
    assert result == {"refusals": 25, "findings": 1}
    (flag,) = world.published.of(SOURCE_STUFFING)
    assert flag["source"] == stuffer and flag["signal"] == "stuffing"
    assert stuffer in DetectorState.get(FLAGS_ID).state.as_dict()

    world.feed([usage_item(world.key_id, int(time.time() * 1000), tokens=50, ip=stuffer)])
    assert world.verdict() == "key_suspended"
    (audit,) = world.audit("key.suspended")
    assert audit["details"]["evidence"]["signal"] == "stuffing_source"
    assert audit["details"]["evidence"]["source"] == stuffer


def test_anonymous_refusals_are_weak_evidence_alerts_only(world: World) -> None:
    noisy = "198.51.100.99"
    lines = [_access_line(noisy, "401") for _ in range(70)]
    lines.append({"status": "200", "ip": noisy})  # not a refusal: ignored
    detector.refusals_handler(logs_event(lines, minute_start()), LambdaContext())
    (flag,) = world.published.of(SOURCE_STUFFING)
    assert flag["unit"] == "refusals/5 min"
    world.feed([usage_item(world.key_id, int(time.time() * 1000), tokens=50, ip=noisy)])
    assert world.verdict() == "allow"
    (alert,) = world.published.of(KEY_SPIKE_ALERT)
    assert alert["signal"] == "stuffing_source" and alert["action"] == "alert"
