"""GitHub secret-scanning signatures and the key list cache, and the leak report's parsing
and labelling, without the network (the key list is fetched through an injected function)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.common import keyformat
from functions.keys import NotFound
from functions.respond.revocation import RevokeRequest
from functions.webhook.logic import (
    MAX_BODY,
    WebhookError,
    authenticate,
    label_and_revoke,
    parse,
)
from functions.webhook.signature import KeysUnavailable, PublicKeys, parse_keys, verify
from tests.detect_events import Signer

SIGNER = Signer()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def keys(document: bytes | None = None, clock: Clock | None = None) -> tuple[PublicKeys, list[str]]:
    fetched: list[str] = []

    def fetch(url: str, token: str | None = None) -> bytes:
        fetched.append(url)
        return document if document is not None else SIGNER.key_list()

    return PublicKeys(
        "https://keys.example", ttl_s=3600, fetch=fetch, clock=clock or Clock()
    ), fetched


def headers(body: bytes, signer: Signer = SIGNER) -> dict[str, str]:
    return {
        "github-public-key-identifier": signer.identifier,
        "github-public-key-signature": signer.sign(body),
    }


@settings(max_examples=25, deadline=None)
@given(body=st.binary(max_size=2048))
def test_a_signature_verifies_over_exactly_its_body(body: bytes) -> None:
    key = parse_keys(SIGNER.key_list())[SIGNER.identifier]
    signature = SIGNER.sign(body)
    assert verify(body, signature, key)
    assert not verify(body + b" ", signature, key)
    assert not verify(body, Signer().sign(body), key)


@pytest.mark.parametrize("signature", ["", "!!!", "AAAA", base64.b64encode(b"x" * 70).decode()])
def test_malformed_signatures_never_verify(signature: str) -> None:
    key = parse_keys(SIGNER.key_list())[SIGNER.identifier]
    assert not verify(b"[]", signature, key)


def test_key_list_is_cached_and_refreshed_after_its_ttl_or_for_a_new_key() -> None:
    clock = Clock()
    cache, fetched = keys(clock=clock)
    assert cache.get(SIGNER.identifier) is not None and len(fetched) == 1
    assert cache.get(SIGNER.identifier) is not None and len(fetched) == 1
    assert cache.get("unknown") is None and len(fetched) == 1  # too soon to refetch
    clock.now += 61
    assert cache.get("unknown") is None and len(fetched) == 2  # a rotation? look once
    clock.now += 3600
    cache.get(SIGNER.identifier)
    assert len(fetched) == 3  # stale


@pytest.mark.parametrize(
    "document",
    [b"not json", b"{}", b'{"public_keys": []}', b'{"public_keys": [{"key_identifier": "x"}]}',
     json.dumps({"public_keys": [{"key_identifier": "x", "key": "-----BEGIN nothing"}]}).encode()],
)  # fmt: skip
def test_unusable_key_lists_are_unavailable(document: bytes) -> None:
    cache, _ = keys(document)
    with pytest.raises(KeysUnavailable):
        cache.get("x")


def test_an_unreachable_key_list_is_unavailable() -> None:
    def fetch(url: str, token: str | None = None) -> bytes:
        raise OSError("connection refused")

    with pytest.raises(KeysUnavailable):
        PublicKeys("https://keys.example", fetch=fetch).get("x")


def test_authenticate_checks_size_then_headers_then_key_then_signature() -> None:
    cache, fetched = keys()
    big = b"[" + b" " * MAX_BODY + b"]"
    with pytest.raises(WebhookError) as info:
        authenticate(big, headers(big), cache)
    assert info.value.status == 413 and not fetched
    with pytest.raises(WebhookError) as info:
        authenticate(b"[]", {}, cache)
    assert info.value.code == "signature_required" and not fetched
    forged = Signer("forged")
    with pytest.raises(WebhookError) as info:
        authenticate(b"[]", headers(b"[]", forged), cache)
    assert info.value.code == "unknown_key_identifier"
    with pytest.raises(WebhookError) as info:
        authenticate(b"[1]", headers(b"[]"), cache)
    assert info.value.code == "invalid_signature"
    authenticate(b"[]", headers(b"[]"), cache)


def test_labels_revoke_our_keys_once_and_call_the_rest_false_positives() -> None:
    ours, gone = keyformat.generate("live"), keyformat.generate("test")
    calls: list[RevokeRequest] = []

    def revoke(request: RevokeRequest) -> dict[str, Any]:
        calls.append(request)
        assert request.secret is not None
        if request.secret.get_secret_value() == gone:
            raise NotFound("no key has this secret")
        return {"revoked": ["key_1", "key_2"]}

    body = json.dumps(
        [{"token": t, "type": "tollgate_api_key", "url": "https://github.com/x/y/blob/1"}
         for t in (ours, gone, "tg_live_short", ours)]
    ).encode()  # fmt: skip
    answer, revoked = label_and_revoke(parse(body), revoke)
    assert [a["label"] for a in answer] == [
        "true_positive", "false_positive", "false_positive", "true_positive",
    ]  # fmt: skip
    assert revoked == ["key_1", "key_2"] and len(calls) == 2
    assert calls[0].actor == "github-secret-scanning" and "github.com/x/y" in calls[0].reason
    assert ours not in repr(calls[0])  # a SecretStr from the start


@pytest.mark.parametrize(
    "body", [b"", b"null", b"{}", b"[1]", b'[{"token": ""}]', b'[{"token": "a", "type": 1}]']
)
def test_bad_payloads(body: bytes) -> None:
    with pytest.raises(WebhookError) as info:
        parse(body)
    assert info.value.status == 400


def test_revoke_request_wants_exactly_one_target() -> None:
    ok = {"reason": "r", "actor": "a"}
    assert RevokeRequest.model_validate({"key_id": "key_x", **ok}).via == "key"
    assert RevokeRequest.model_validate({"tenant_id": "t", "principal": "p", **ok}).via == (
        "principal"
    )
    for bad in ({}, {"key_id": "k", "tenant_id": "t"}, {"principal": "p"},
                {"principal": "p", "tenant_id": "t", "key_id": "k"}):  # fmt: skip
        with pytest.raises(ValueError):
            RevokeRequest.model_validate({**bad, **ok})


# -- finding 4 of issue 11: no fetch storm, last good list, authenticated fetch -------------
class Flaky:
    """A key list endpoint that fails when told to; records each call's token."""

    def __init__(self) -> None:
        self.down = False
        self.calls: list[str | None] = []

    def __call__(self, url: str, token: str | None = None) -> bytes:
        self.calls.append(token)
        if self.down:
            raise OSError("HTTP 403 from the key list")  # GitHub's rate limit answer
        return SIGNER.key_list()


def test_finding_4_forged_identifiers_cause_at_most_one_fetch_per_refresh_interval() -> None:
    clock, endpoint = Clock(), Flaky()
    cache = PublicKeys("https://keys.example", fetch=endpoint, clock=clock)
    for minute in range(10):
        for n in range(1000):  # a thousand forged identifiers a minute
            assert cache.get(f"forged-{minute}-{n}") is None
        clock.now += 60
    assert len(endpoint.calls) == 10  # one per minute, whatever the number of forgeries


def test_finding_4_an_unavailable_key_list_is_not_refetched_per_request_and_last_good_serves() -> (
    None
):
    clock, endpoint = Clock(), Flaky()
    cache = PublicKeys("https://keys.example", ttl_s=3600, fetch=endpoint, clock=clock)
    assert cache.get(SIGNER.identifier) is not None
    endpoint.down = True
    clock.now += 3600  # the list is stale and GitHub is down
    attempts = []
    for _ in range(240):  # four hours, a request every minute
        assert cache.get(SIGNER.identifier) is not None  # the last good list answers
        assert cache.get("forged") is None
        attempts.append(len(endpoint.calls))
        clock.now += 60
    # backoff: 60 s, 120 s, 240 s ... capped at 900 s -- not one fetch per request
    assert attempts[-1] - 1 <= 4 * 3600 // 900 + 4
    endpoint.down = False
    clock.now += 900
    assert cache.get(SIGNER.identifier) is not None
    clock.now += 30
    cache.get("forged")
    assert len(endpoint.calls) == attempts[-1] + 1  # back to normal: one fetch, then cached


def test_finding_4_without_a_good_list_requests_are_refused_with_the_backoff_as_retry_after() -> (
    None
):
    clock, endpoint = Clock(), Flaky()
    endpoint.down = True
    cache = PublicKeys("https://keys.example", fetch=endpoint, clock=clock)
    retries = []
    for _ in range(50):
        with pytest.raises(KeysUnavailable) as info:
            cache.get(SIGNER.identifier)
        retries.append(info.value.retry_after)
        clock.now += 1
    assert len(endpoint.calls) == 1 and retries[0] == 60  # one fetch, then back off


def test_finding_4_the_fetch_is_authenticated_with_the_token_and_falls_back_without_it() -> None:
    from functions.webhook.signature import TokenRefused

    endpoint = Flaky()
    cache = PublicKeys("https://keys.example", fetch=endpoint, token=lambda: "ghp_secret")
    assert cache.get(SIGNER.identifier) is not None
    assert endpoint.calls == ["ghp_secret"]

    calls: list[str | None] = []

    def refusing(url: str, token: str | None = None) -> bytes:
        calls.append(token)
        if token:
            raise TokenRefused("HTTP 401")
        return SIGNER.key_list()

    clock = Clock()
    cache = PublicKeys("https://k", fetch=refusing, token=lambda: "ghp_bad", clock=clock)
    assert cache.get(SIGNER.identifier) is not None and calls == ["ghp_bad", None]
    clock.now += 4000
    cache.get(SIGNER.identifier)
    assert calls == ["ghp_bad", None, None]  # a refused token is not sent again


def test_finding_4_a_token_is_read_from_its_secret_string_or_json() -> None:
    from functions.webhook.config import parse_token

    assert parse_token('{"token": " ghp_x "}') == "ghp_x" and parse_token("ghp_y\n") == "ghp_y"
    assert parse_token("") is None and parse_token('{"token": ""}') is None
    assert parse_token("not a token") is None and parse_token("{broken") is None
