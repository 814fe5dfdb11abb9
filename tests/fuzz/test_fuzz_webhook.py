"""Bad leak reports on ``POST /webhooks/github/secret-scanning`` through the real webhook
handler (GitHub played by a local key server and our own P-256 key; moto underneath).

Whatever the body, the signature headers or their encoding: 200 with a label per token, or
a 4xx with the OpenAI error body -- never a 5xx, never a traceback -- and nothing written
(no report here names a real key: those are revoked on purpose, see test_webhook.py)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.common import keyformat
from functions.keys import KeyService
from functions.respond.config import ENV_KEYS_TTL, ENV_KEYS_URL
from functions.webhook import handler as webhook
from functions.webhook.logic import MAX_BODY
from tests.detect_events import KeyServer, LambdaContext, Signer, webhook_event
from tests.fuzz.support import count, fuzz, openai_error, snapshot

ID_HEADER = "Github-Public-Key-Identifier"
SIG_HEADER = "Github-Public-Key-Signature"


@pytest.fixture
def github(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Signer]:
    from functions.common import ddb

    ddb.reset_client()
    svc = KeyService()
    svc.create_plan("starter", actor="fuzz")
    svc.create_tenant("acme", plan="starter", actor="fuzz")
    svc.create_key("acme", actor="fuzz")  # a real key exists; no report names it
    signer = Signer()
    server = KeyServer(signer.key_list())
    monkeypatch.setenv(ENV_KEYS_URL, server.url)
    monkeypatch.setenv(ENV_KEYS_TTL, "3600")
    webhook.reset()
    yield signer
    webhook.reset()
    server.close()


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30)
)
tokens = st.one_of(
    st.text(max_size=60),
    st.builds(keyformat.generate, st.sampled_from(["live", "test"])),  # well-formed, not ours
    st.from_regex(r"tg_(live|test)_[A-Za-z0-9]{0,45}", fullmatch=True),
    st.just(""),
    st.text(min_size=1025, max_size=1100),
)
report_items = st.one_of(
    st.fixed_dictionaries(
        {"token": st.one_of(tokens, scalars), "type": st.one_of(st.text(max_size=40), scalars)},
        optional={
            "url": st.one_of(st.text(max_size=80), scalars),
            "source": st.one_of(st.text(max_size=40), scalars),
            "extra": scalars,
        },
    ),
    scalars,
    st.lists(scalars, max_size=3),
)
bodies = st.one_of(
    st.lists(report_items, max_size=5).map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.text(max_size=10), scalars, max_size=3).map(
        lambda v: json.dumps(v).encode()
    ),
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.just(b"[]"),
    st.just(b"[" + b'{"token": "x", "type": "t"},' * 600 + b"{}]"),  # too many / too big
)
signatures = st.sampled_from(["valid", "other-body", "random-b64", "text", "empty", "absent"])
identifiers = st.one_of(st.sampled_from(["valid", "absent", "empty"]), st.text(max_size=300))


def _headers(signer: Signer, body: bytes, identifier: str, signature: str) -> dict[str, str]:
    headers: dict[str, str] = {"Content-Type": "application/json"}
    if identifier == "valid":
        headers[ID_HEADER] = signer.identifier
    elif identifier == "empty":
        headers[ID_HEADER] = ""
    elif identifier != "absent":
        headers[ID_HEADER] = identifier
    sig = {
        "valid": lambda: signer.sign(body),
        "other-body": lambda: signer.sign(body + b"!"),
        "random-b64": lambda: base64.b64encode(body[:40] or b"x").decode(),
        "text": lambda: "not a signature \u2603",
        "empty": lambda: "",
    }.get(signature)
    if sig is not None:
        headers[SIG_HEADER] = sig()
    return headers


@fuzz(60)
@given(
    body=bodies,
    identifier=identifiers,
    signature=signatures,
    b64=st.booleans(),
    lowercase=st.booleans(),
)
def test_any_report_is_answered_typed_and_writes_nothing(
    dynamodb: Any,
    github: Signer,
    body: bytes,
    identifier: str,
    signature: str,
    b64: bool,
    lowercase: bool,
) -> None:
    count("webhook report+signature")
    headers = _headers(github, body, identifier, signature)
    if lowercase:
        headers = {k.lower(): v for k, v in headers.items()}
    before = snapshot(dynamodb)
    evt = webhook_event(body, headers, b64=b64)
    out = webhook.handler(evt, LambdaContext())
    status, text = out["statusCode"], out.get("body") or ""
    assert status in (200, 400, 401, 413), (status, text[:300])
    if status == 200:
        answer = json.loads(text)
        assert isinstance(answer, list)
        assert all(a["label"] == "false_positive" for a in answer)
        assert all(set(a) == {"token_raw", "token_type", "label"} for a in answer)
    else:
        openai_error(text)
    if status == 200 or (identifier == "valid" and signature == "valid" and status == 400):
        assert len(body) <= MAX_BODY
    assert snapshot(dynamodb) == before, "nothing written"


@fuzz(20)
@given(
    headers=st.dictionaries(
        st.one_of(
            st.sampled_from([ID_HEADER, SIG_HEADER, ID_HEADER.lower(), SIG_HEADER.upper()]),
            st.text(max_size=20),
        ),
        st.text(max_size=600),
        max_size=4,
    ),
    body=st.one_of(st.none(), st.text(max_size=50)),
)
def test_any_headers_and_raw_event_shapes(
    dynamodb: Any, github: Signer, headers: dict[str, str], body: str | None
) -> None:
    count("webhook raw event")
    before = snapshot(dynamodb)
    evt = webhook_event(b"", headers)
    evt["body"] = body
    out = webhook.handler(evt, LambdaContext())
    assert out["statusCode"] in (400, 401, 413), out
    openai_error(out["body"])
    assert snapshot(dynamodb) == before
