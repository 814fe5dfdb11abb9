"""The leak webhook on moto, with GitHub played by a local key server and our own P-256 key
pair: good reports revoke and get labels; unsigned, badly signed, forged, malformed and
oversized reports get a clear 4xx and write nothing; no token is ever logged."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
)

from functions.authorizer import handler as authorizer
from functions.common import ddb, keyformat
from functions.common.routes import route_for
from functions.keys import KeyService
from functions.respond.config import ENV_KEYS_TTL, ENV_KEYS_URL
from functions.webhook import handler as webhook
from functions.webhook.logic import MAX_BODY
from tests.authorizer_events import request_event
from tests.detect_events import KeyServer, LambdaContext, Signer, webhook_event

_CHAT = route_for("POST", "/v1/chat/completions")
assert _CHAT
CHAT = _CHAT
ID_HEADER = "Github-Public-Key-Identifier"
SIG_HEADER = "Github-Public-Key-Signature"


def verdict(secret: str) -> str:
    event = APIGatewayAuthorizerRequestEvent(
        request_event(CHAT, {"Authorization": f"Bearer {secret}"})
    )
    decision, _ = authorizer.decide(event, time.time())
    return decision.code if not decision.admitted else "allow"


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Signer, KeyServer]]:
    signer = Signer()
    server = KeyServer(signer.key_list())
    monkeypatch.setenv(ENV_KEYS_URL, server.url)
    monkeypatch.setenv(ENV_KEYS_TTL, "3600")
    webhook.reset()
    yield signer, server
    webhook.reset()
    server.close()


@pytest.fixture
def keys(dynamodb: Any) -> dict[str, Any]:
    ddb.reset_client()
    authorizer._store = None
    svc = KeyService()
    svc.create_plan("starter", actor="test")
    svc.create_tenant("acme", plan="starter", actor="test")
    live = svc.create_key("acme", actor="test")
    child = svc.delegate_key(live["key_id"], principal="agent", actor="test")
    test = svc.create_key("acme", environment="test", actor="test")
    return {"live": live, "child": child, "test": test}


def report(*tokens: str, kind: str = "tollgate_api_key") -> bytes:
    items = [
        {"token": t, "type": kind, "url": "https://gist.github.com/x/1", "source": "gist"}
        for t in tokens
    ]
    return json.dumps(items).encode()


def post(
    body: bytes, signer: Signer | None = None, *, headers: dict[str, str] | None = None, **kw: Any
) -> dict[str, Any]:
    if headers is None:
        assert signer is not None
        headers = {ID_HEADER: signer.identifier, SIG_HEADER: signer.sign(body)}
    headers = {"Content-Type": "application/json", **headers}
    return webhook.handler(webhook_event(body, headers, **kw), LambdaContext())


def test_a_signed_report_revokes_each_real_key_and_labels_every_token(
    github: tuple[Signer, KeyServer], keys: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    signer, _ = github
    unknown = keyformat.generate("live")  # well-formed, not ours
    tokens = (keys["live"]["secret"], keys["test"]["secret"], unknown, "tg_live_garbage")
    caplog.set_level(logging.DEBUG)
    response = post(report(*tokens), signer)
    assert response["statusCode"] == 200
    answer = json.loads(response["body"])
    assert [a["label"] for a in answer] == [
        "true_positive", "true_positive", "false_positive", "false_positive",
    ]  # fmt: skip
    assert [a["token_raw"] for a in answer] == list(tokens)
    assert {a["token_type"] for a in answer} == {"tollgate_api_key"}
    assert verdict(keys["live"]["secret"]) == "key_revoked"
    assert verdict(keys["child"]["secret"]) == "key_revoked"  # delegated keys go too
    assert verdict(keys["test"]["secret"]) == "key_revoked"
    audit = [
        r for r in KeyService().audit(key_id=keys["live"]["key_id"]) if r["action"] == "key.revoked"
    ]
    assert audit[0]["actor"] == "github-secret-scanning" and "gist" in audit[0]["reason"]
    logged = caplog.text
    for token in tokens:
        assert token not in logged


def test_a_report_sent_again_is_answered_the_same(
    github: tuple[Signer, KeyServer], keys: dict[str, Any]
) -> None:
    signer, _ = github
    body = report(keys["live"]["secret"], keys["live"]["secret"])
    first, again = post(body, signer), post(body, signer)
    assert first["body"] == again["body"]
    assert [a["label"] for a in json.loads(again["body"])] == ["true_positive"] * 2


def test_base64_bodies_are_verified_over_the_raw_bytes(
    github: tuple[Signer, KeyServer], keys: dict[str, Any]
) -> None:
    signer, _ = github
    response = post(report(keys["live"]["secret"]), signer, b64=True)
    assert response["statusCode"] == 200
    assert verdict(keys["live"]["secret"]) == "key_revoked"


def _refused(
    send: Callable[[], dict[str, Any]], status: int, code: str, keys: dict[str, Any], tables: Any
) -> None:
    """``send()`` is refused with ``status``/``code`` and changes no table."""
    before = tables()
    response = send()
    assert tables() == before
    assert response["statusCode"] == status, response
    body = json.loads(response["body"])
    assert body["error"]["code"] == code and body["error"]["message"]
    assert keys["live"]["secret"] not in response["body"]
    assert verdict(keys["live"]["secret"]) == "allow"


@pytest.fixture
def unchanged(snapshot: Callable[[], dict[str, list[str]]]) -> Any:
    return snapshot


def test_unsigned_reports_are_refused(
    github: tuple[Signer, KeyServer], keys: dict[str, Any], unchanged: Any
) -> None:
    signer, _ = github
    body = report(keys["live"]["secret"])
    _refused(lambda: post(body, headers={}), 401, "signature_required", keys, unchanged)
    only_id = {ID_HEADER: signer.identifier}
    _refused(lambda: post(body, headers=only_id), 401, "signature_required", keys, unchanged)
    only_sig = {SIG_HEADER: signer.sign(body)}
    _refused(lambda: post(body, headers=only_sig), 401, "signature_required", keys, unchanged)


def test_badly_signed_reports_are_refused(
    github: tuple[Signer, KeyServer], keys: dict[str, Any], unchanged: Any
) -> None:
    signer, _ = github
    body = report(keys["live"]["secret"])
    other = report(keys["test"]["secret"])
    cases = [
        {ID_HEADER: signer.identifier, SIG_HEADER: signer.sign(other)},  # another body's
        {ID_HEADER: signer.identifier, SIG_HEADER: Signer().sign(body)},  # another key's
        {ID_HEADER: signer.identifier, SIG_HEADER: "not base64 !!"},
        {ID_HEADER: signer.identifier, SIG_HEADER: base64.b64encode(b"\x30\x00").decode()},
        {ID_HEADER: signer.identifier, SIG_HEADER: "A" * 600},
    ]
    for headers in cases:
        send = partial(post, body, headers=headers)
        _refused(send, 401, "invalid_signature", keys, unchanged)
    tampered = body.replace(b"gist", b"gisT")
    headers = {ID_HEADER: signer.identifier, SIG_HEADER: signer.sign(body)}
    _refused(lambda: post(tampered, headers=headers), 401, "invalid_signature", keys, unchanged)


def test_a_forged_key_identifier_is_refused_and_cannot_hammer_the_key_list(
    github: tuple[Signer, KeyServer], keys: dict[str, Any], unchanged: Any
) -> None:
    _, server = github
    body = report(keys["live"]["secret"])
    forger = Signer("forged-key")
    for _ in range(5):
        headers = {ID_HEADER: forger.identifier, SIG_HEADER: forger.sign(body)}
        send = partial(post, body, headers=headers)
        _refused(send, 401, "unknown_key_identifier", keys, unchanged)
    assert server.hits == 1  # fetched once, cached; unknown ids do not refetch within a minute


def test_a_rotated_github_key_is_picked_up(
    github: tuple[Signer, KeyServer], keys: dict[str, Any]
) -> None:
    signer, server = github
    assert post(report("tg_live_x"), signer)["statusCode"] == 200  # caches signer's key
    rotated = Signer("test-key-2")
    server.document = rotated.key_list()
    keys_cache = webhook.public_keys()
    keys_cache._fetched_at = (keys_cache._fetched_at or 0) - 120  # a minute has passed
    keys_cache._next_try -= 120
    response = post(report(keys["live"]["secret"]), rotated)
    assert response["statusCode"] == 200 and server.hits == 2
    assert verdict(keys["live"]["secret"]) == "key_revoked"


def test_malformed_payloads_are_refused(
    github: tuple[Signer, KeyServer], keys: dict[str, Any], unchanged: Any
) -> None:
    signer, _ = github
    for body in (
        b"not json",
        b'{"token": "x"}',
        b'[{"type": "x"}]',
        b'[{"token": 5, "type": "x"}]',
        json.dumps([{"token": keys["live"]["secret"]}]).encode(),
        b"[" + b",".join([b'{"token":"a","type":"b"}'] * 501) + b"]",
    ):
        _refused(partial(post, body, signer), 400, "invalid_payload", keys, unchanged)


def test_oversized_payloads_are_refused_before_anything_else(
    github: tuple[Signer, KeyServer], keys: dict[str, Any], unchanged: Any
) -> None:
    signer, server = github
    body = report(keys["live"]["secret"], *["tg_live_" + "x" * 30] * 2000)
    assert len(body) > MAX_BODY
    _refused(lambda: post(body, signer), 413, "payload_too_large", keys, unchanged)
    assert server.hits == 0  # refused before the key list was even needed


def test_unreachable_key_list_is_a_503(
    monkeypatch: pytest.MonkeyPatch, keys: dict[str, Any], unchanged: Any
) -> None:
    monkeypatch.setenv(ENV_KEYS_URL, "http://127.0.0.1:9/nothing-here")
    webhook.reset()
    signer = Signer()
    answers: list[dict[str, Any]] = []

    def send() -> dict[str, Any]:
        answers.append(post(report(keys["live"]["secret"]), signer))
        return answers[-1]

    _refused(send, 503, "keys_unavailable", keys, unchanged)
    assert answers[0]["headers"]["Retry-After"] == "60"
    webhook.reset()


def test_through_the_local_gateway_without_an_api_key(
    github: tuple[Signer, KeyServer], keys: dict[str, Any]
) -> None:
    from werkzeug.test import Client

    from tollgate.local.gateway import LocalGateway

    signer, _ = github
    client = Client(LocalGateway())
    body = report(keys["live"]["secret"])
    url = "/webhooks/github/secret-scanning"
    unsigned = client.post(url, data=body, content_type="application/json")
    assert unsigned.status_code == 401
    assert json.loads(unsigned.data)["error"]["code"] == "signature_required"
    signed = client.post(
        url,
        data=body,
        content_type="application/json",
        headers={ID_HEADER: signer.identifier, SIG_HEADER: signer.sign(body)},
    )
    assert signed.status_code == 200
    assert json.loads(signed.data)[0]["label"] == "true_positive"
    assert verdict(keys["live"]["secret"]) == "key_revoked"
