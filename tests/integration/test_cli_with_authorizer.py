"""What the CLI writes is what the authorizer enforces: keys created, rotated, delegated,
suspended, reinstated and revoked through ``tollgate`` get the authorizer's verdicts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
)

from functions.authorizer import handler
from functions.common import ddb
from functions.common.routes import route_for
from functions.keys import KeyService
from tests.authorizer_events import request_event
from tests.integration.conftest import Run

CHAT = route_for("POST", "/v1/chat/completions")
TOOLS = route_for("POST", "/v1/tools/{name}/invoke")
assert CHAT and TOOLS


@pytest.fixture(autouse=True)
def fresh_authorizer(dynamodb: Any) -> Iterator[None]:
    ddb.reset_client()
    handler._store = None
    yield
    handler._store = None


def verdict(secret: str, route: Any = CHAT, now: float | None = None) -> str:
    event = APIGatewayAuthorizerRequestEvent(
        request_event(route, {"Authorization": f"Bearer {secret}"})
    )
    decision, _ = handler.decide(event, time.time() if now is None else now)
    return decision.code if not decision.admitted else "allow"


def test_lifecycle_as_the_authorizer_sees_it(cli: Run, key: dict[str, Any]) -> None:
    assert verdict(key["secret"]) == "allow"

    rotated = cli("keys", "rotate", key["key_id"], "--grace", "1h").ok().json
    assert verdict(rotated["secret"]) == "allow"
    assert verdict(key["secret"]) == "allow"  # within the grace
    assert verdict(key["secret"], now=time.time() + 3700) == "invalid_api_key"  # after it
    newest = cli("keys", "rotate", key["key_id"], "--grace", "0").ok().json
    assert verdict(rotated["secret"]) == "invalid_api_key"
    assert verdict(newest["secret"]) == "allow"

    child = cli(
        "keys", "delegate", key["key_id"], "--principal", "agent", "--scopes", "inference:invoke"
    ).ok().json  # fmt: skip
    assert verdict(child["secret"]) == "allow"
    assert verdict(child["secret"], TOOLS) == "insufficient_scope"

    KeyService().suspend(key["key_id"], reason="spike", actor="detector")
    assert verdict(newest["secret"]) == "key_suspended"
    assert verdict(child["secret"]) == "parent_key_inactive"
    cli("keys", "reinstate", key["key_id"], "--reason", "false positive").ok()
    assert verdict(newest["secret"]) == "allow"
    assert verdict(child["secret"]) == "allow"

    cli("keys", "revoke", key["key_id"], "--reason", "offboarded").ok()
    assert verdict(newest["secret"]) == "key_revoked"
    assert verdict(child["secret"]) == "key_revoked"


def test_expiry_and_environment(cli: Run, tenant: str) -> None:
    test_key = cli("keys", "create", "--tenant", tenant, "--env", "test", "--expires-in", "1h")
    secret = test_key.ok().json["secret"]
    assert verdict(secret) == "allow"
    assert verdict(secret, now=time.time() + 3700) == "key_expired"
