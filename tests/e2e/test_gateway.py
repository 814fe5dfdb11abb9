"""The gate through the local stack over plain HTTP: status codes and error bodies as
docs/design.md gives them, and revocation taking effect on the very next request."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from tests.e2e.conftest import Stack


def http(
    stack: Stack, method: str, path: str, key: str | None = None, body: Any = None,
    header: str = "Authorization",
) -> tuple[int, dict[str, str], Any]:  # fmt: skip
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers[header] = f"Bearer {key}" if header == "Authorization" else key
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(stack.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"null")


@pytest.fixture(scope="module")
def tenant(stack: Stack) -> str:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    stack.cli("plans", "create", name, "--requests-per-minute", "5")
    stack.cli("tenants", "create", name, "--plan", name)
    return name


def new_key(stack: Stack, tenant: str, *args: str) -> dict[str, Any]:
    out = stack.cli("keys", "create", "--tenant", tenant, *args)
    assert isinstance(out, dict)
    return out


def test_health(stack: Stack) -> None:
    status, _, body = http(stack, "GET", "/health")
    assert status == 200 and body == {"status": "ok"}


@pytest.mark.parametrize("key", [None, "not-a-key", "tg_live_" + "A" * 38])
def test_missing_malformed_unknown_key_is_401(stack: Stack, key: str | None) -> None:
    status, headers, body = http(stack, "GET", "/v1/models", key)
    assert status == 401
    assert body["error"]["code"] == "invalid_api_key"
    assert body["error"]["type"] == "invalid_request_error"
    assert "WWW-Authenticate" in headers


def test_unknown_route_is_404(stack: Stack, tenant: str) -> None:
    key = new_key(stack, tenant)["secret"]
    status, _, body = http(stack, "GET", "/v1/nothing-here", key)
    assert status == 404 and body["error"]["code"] == "not_found"


def test_wrong_environment_and_scope_are_403(stack: Stack, tenant: str) -> None:
    test_key = new_key(stack, tenant, "--env", "test")["secret"]
    status, _, body = http(stack, "GET", "/v1/fine_tuning/jobs", test_key)
    assert status == 403 and body["error"]["code"] == "wrong_environment"
    narrow = new_key(stack, tenant, "--scopes", "inference:invoke")["secret"]
    status, _, body = http(stack, "POST", "/v1/tools/calculator/invoke", narrow, {})
    assert status == 403 and body["error"]["code"] == "insufficient_scope"
    assert body["error"]["type"] == "permission_error"


def test_revocation_takes_effect_on_the_next_request(stack: Stack, tenant: str) -> None:
    created = new_key(stack, tenant)
    status, _, _ = http(stack, "GET", "/v1/models", created["secret"], header="x-api-key")
    assert status not in (401, 403)
    out = stack.cli("keys", "revoke", created["key_id"], "--reason", "e2e")
    assert created["key_id"] in out["revoked"]
    status, _, body = http(stack, "GET", "/v1/models", created["secret"])
    assert status == 403 and body["error"]["code"] == "key_revoked"
