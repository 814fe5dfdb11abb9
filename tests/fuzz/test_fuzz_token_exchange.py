"""Bad tokens and forms on ``POST /v1/auth/token`` through the local gateway (the route table
the stack uses), with a real local OIDC issuer and a trust policy that trusts it.

Whatever the form, the token's parts, their base64 or their JSON: an OAuth error body
(``error``, ``error_description``) with 400 -- never a 5xx, never a traceback -- and nothing
written. A mutated valid token is refused unless it decodes to the very same token (base64
ignores a last character's spare bits), which is then exchanged like the original."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.test import Client

from functions.authorizer import handler as authorizer_handler
from functions.common import ddb
from functions.keys import KeyService
from functions.trust import handler as trust_handler
from functions.trust.config import ENV_ALLOW_HTTP
from functions.trust.exchange import GRANT_TYPE, ID_TOKEN
from tests.fuzz.support import count, fuzz, snapshot
from tollgate.local.gateway import LocalGateway
from tollgate.local.oidc import LocalIssuer, b64url, running

AUDIENCE = "tollgate-fuzz"
SUBJECT = "repo:acme/app:ref:refs/heads/main"
WRITTEN = ("keys", "secrets", "gate", "audit")


@pytest.fixture
def world(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Client, LocalIssuer]]:
    monkeypatch.setenv(ENV_ALLOW_HTTP, "1")
    ddb.reset_client()
    authorizer_handler._store = None
    trust_handler.reset()
    svc = KeyService()
    svc.create_plan("starter", actor="fuzz")
    svc.create_tenant("acme", plan="starter", actor="fuzz")
    with running() as issuer:
        svc.create_trust_policy("acme", issuer_url=issuer.url, audience_value=AUDIENCE,
                                subject="repo:acme/*", actor="fuzz")  # fmt: skip
        issuer.add_key("rogue", "RS256", publish=False)
        yield Client(LocalGateway()), issuer
    trust_handler.reset()


def post(client: Client, body: bytes, content_type: str) -> tuple[int, str]:
    resp = client.post("/v1/auth/token", data=body, headers={"Content-Type": content_type})
    return resp.status_code, resp.get_data(as_text=True)


def oauth_error(status: int, text: str) -> dict[str, Any]:
    assert status == 400, (status, text[:300])
    assert "Traceback" not in text and 'File "' not in text, text[:300]
    doc = json.loads(text)
    assert set(doc) == {"error", "error_description"}, text[:300]
    assert isinstance(doc["error"], str) and isinstance(doc["error_description"], str)
    return doc


def form(token: str) -> bytes:
    from urllib.parse import urlencode

    fields = {"grant_type": GRANT_TYPE, "subject_token": token, "subject_token_type": ID_TOKEN}
    return urlencode(fields).encode()


def decoded(token: str) -> list[bytes] | None:
    try:
        return [base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in token.split(".")]
    except ValueError:
        return None


b64_alphabet = st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
segments = st.one_of(
    st.text(b64_alphabet, max_size=80),
    st.text(max_size=40),
    st.binary(max_size=60).map(lambda b: b64url(b)),
    st.dictionaries(
        st.text(max_size=8), st.one_of(st.none(), st.integers(), st.text(max_size=8)), max_size=4
    ).map(lambda d: b64url(json.dumps(d).encode())),
)
algs = st.sampled_from(["none", "None", "HS256", "HS512", "RS256", "ES256", "PS256", "EdDSA", ""])


@fuzz(40)
@given(parts=st.lists(segments, min_size=1, max_size=5), alg=algs, kid=st.text(max_size=20))
def test_any_token_text_is_refused_typed_and_writes_nothing(
    dynamodb: Any, world: tuple[Client, LocalIssuer], parts: list[str], alg: str, kid: str
) -> None:
    count("token exchange: token text")
    client, issuer = world
    header = b64url(json.dumps({"alg": alg, "kid": kid}).encode())
    claims = b64url(json.dumps(issuer.claims(SUBJECT, AUDIENCE)).encode())
    before = snapshot(dynamodb, *WRITTEN)
    for token in (".".join(parts), f"{header}.{claims}.{parts[0]}", f"{header}.{'.'.join(parts)}"):
        oauth_error(*post(client, form(token), "application/x-www-form-urlencoded"))
    assert snapshot(dynamodb, *WRITTEN) == before


@fuzz(40)
@given(data=st.data())
def test_a_mutated_valid_token_is_refused_unless_it_is_the_same_token(
    dynamodb: Any, world: tuple[Client, LocalIssuer], data: st.DataObject
) -> None:
    count("token exchange: mutated token")
    client, issuer = world
    signer = data.draw(st.sampled_from(["rsa-1", "ec-1", "rogue"]))
    token = issuer.mint(SUBJECT, AUDIENCE, kid=signer)
    at = data.draw(st.integers(0, len(token) - 1))
    how = data.draw(st.sampled_from(["replace", "insert", "delete"]))
    char = data.draw(st.sampled_from("Aa0-_.=+/ \u2603%"))
    mutated = {
        "replace": token[:at] + char + token[at + 1 :],
        "insert": token[:at] + char + token[at:],
        "delete": token[:at] + token[at + 1 :],
    }[how]
    before = snapshot(dynamodb, *WRITTEN)
    status, text = post(client, form(mutated), "application/x-www-form-urlencoded")
    if status == 200:  # only the very same token, signed by a published key
        assert signer != "rogue" and decoded(mutated) == decoded(token), mutated
        return
    oauth_error(status, text)
    assert snapshot(dynamodb, *WRITTEN) == before


CONTENT_TYPES = ["application/x-www-form-urlencoded", "application/json", "text/plain", "",
                 "application/x-www-form-urlencoded; x"]  # fmt: skip


@fuzz(30)
@given(
    body=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)),
    content_type=st.sampled_from(CONTENT_TYPES),
)
def test_any_form_body_is_refused_typed_and_writes_nothing(
    dynamodb: Any, world: tuple[Client, LocalIssuer], body: bytes, content_type: str
) -> None:
    count("token exchange: form body")
    client, _ = world
    before = snapshot(dynamodb, *WRITTEN)
    oauth_error(*post(client, body, content_type))
    assert snapshot(dynamodb, *WRITTEN) == before
