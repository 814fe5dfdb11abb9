"""The token exchange on the real local stack (``make local``): its local OIDC issuer mints a
token over HTTP, ``tollgate --local trust create`` trusts it, ``POST /v1/auth/token``
exchanges it, the key works with the OpenAI SDK, ``trust delete`` stops it."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from openai import OpenAI, PermissionDeniedError

from tests.e2e.conftest import Stack


def post_form(url: str, fields: dict[str, str]) -> tuple[int, Any]:
    data = urllib.parse.urlencode(fields).encode()
    request = urllib.request.Request(url, data=data, method="POST")
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_exchange_on_the_local_stack(stack: Stack) -> None:
    issuer = f"http://127.0.0.1:{stack.env['TOLLGATE_OIDC_PORT']}"
    policy = stack.cli("trust", "create", "--tenant", "demo", "--issuer", issuer, "--audience",
                       "tollgate", "--subject", "agent-*", "--scopes", "inference:invoke",
                       "--ttl", "15m", "--principal", "agent:{sub}")  # fmt: skip
    status, token = post_form(f"{issuer}/mint", {"sub": "agent-7", "aud": "tollgate"})
    assert status == 200
    status, raw = post_form(f"{stack.url}/v1/auth/token", {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": token,
        "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
    })  # fmt: skip
    assert status == 200, raw
    body = json.loads(raw)
    assert body["token_type"] == "Bearer" and 0 < body["expires_in"] <= 900
    client = OpenAI(base_url=f"{stack.url}/v1", api_key=body["access_token"], max_retries=0)
    reply = client.chat.completions.create(
        model="tollgate-echo", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content
    shown = stack.cli("keys", "show", body["key_id"])
    assert shown["principal"] == "agent:agent-7"
    assert shown["parent_key_id"] == policy["root_key_id"]
    deleted = stack.cli("trust", "delete", policy["policy_id"], "--reason", "done")
    assert body["key_id"] in deleted["revoked"]
    try:
        client.chat.completions.create(
            model="tollgate-echo", messages=[{"role": "user", "content": "hi"}]
        )
        raise AssertionError("a key of a deleted trust policy still works")
    except PermissionDeniedError as exc:
        assert exc.code == "key_revoked", exc.body
