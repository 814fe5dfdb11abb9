"""Fixtures and helpers of the token-exchange tests (a pytest plugin: tests/conftest.py): a
local OIDC issuer, a tenant with a trust policy, and the local gateway (the route table the
stack uses) to call ``/v1/auth/token`` on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from werkzeug.test import Client

from functions.authorizer import handler as authorizer_handler
from functions.common import ddb
from functions.keys import KeyService
from functions.trust import handler as trust_handler
from functions.trust.config import ENV_ALLOW_HTTP
from functions.trust.exchange import GRANT_TYPE, ID_TOKEN
from tollgate.local.gateway import LocalGateway
from tollgate.local.oidc import LocalIssuer, running

AUDIENCE = "tollgate-test"
SUBJECT = "repo:acme/app:ref:refs/heads/main"


@pytest.fixture
def oidc_issuer() -> Iterator[LocalIssuer]:
    with running() as found:
        yield found


@pytest.fixture
def trust_gateway(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    monkeypatch.setenv(ENV_ALLOW_HTTP, "1")
    ddb.reset_client()
    authorizer_handler._store = None
    trust_handler.reset()
    yield Client(LocalGateway())
    trust_handler.reset()
    authorizer_handler._store = None


@pytest.fixture
def trust_service(trust_gateway: Client) -> KeyService:
    svc = KeyService()
    svc.create_plan("starter", requests_per_minute=1000)
    svc.create_tenant("acme", plan="starter")
    return svc


def policy(svc: KeyService, issuer: LocalIssuer, **over: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "issuer_url": issuer.url,
        "audience_value": AUDIENCE,
        "subject": "repo:acme/*:ref:refs/heads/main",
        "scopes": ["inference:invoke"],
        "actor": "test:operator",
    }
    args.update(over)
    return svc.create_trust_policy("acme", **args)


def form(token: str, **over: str) -> str:
    fields = {"grant_type": GRANT_TYPE, "subject_token": token, "subject_token_type": ID_TOKEN}
    fields.update(over)
    return urlencode({k: v for k, v in fields.items() if v is not None})


def exchange(client: Client, token: str, **over: str) -> tuple[int, dict[str, Any]]:
    resp = client.post(
        "/v1/auth/token",
        data=form(token, **over),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.headers.get("Cache-Control") == "no-store"
    return resp.status_code, json.loads(resp.get_data(as_text=True))


def chat(client: Client, secret: str) -> Any:
    return client.post(
        "/v1/chat/completions",
        json={"model": "tollgate-echo", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {secret}"},
    )
