"""Finding 5 of issue 11 (CI can fail on its own): a DynamoDB failure while the leak webhook
revokes a reported key escaped the handler as a pynamodb error, which API Gateway answers
502 ``bad_gateway``. Every injected fault must be a typed 503 (GitHub delivers the report
again; revoking is idempotent), and the report succeeds once DynamoDB answers again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from functions.common import ddb
from functions.keys import KeyService
from functions.respond.config import ENV_KEYS_TTL, ENV_KEYS_URL
from functions.webhook import handler as webhook
from tests.detect_events import KeyServer, LambdaContext, Signer, webhook_event
from tollgate.local import aws
from tollgate.local.faults import ERROR, THROTTLE, Faults

# The DynamoDB operations a revocation through the webhook makes (a fault on each in turn).
OPERATIONS = ("GetItem", "Query", "UpdateItem", "PutItem", "BatchGetItem")


@pytest.fixture
def faults(moto_server: aws.MotoServer) -> Iterator[Faults]:
    f = moto_server.faults
    f.off()
    f.injected.clear()
    yield f
    f.off()
    f.injected.clear()


@pytest.fixture
def signer(monkeypatch: pytest.MonkeyPatch) -> Iterator[Signer]:
    signer = Signer()
    server = KeyServer(signer.key_list())
    monkeypatch.setenv(ENV_KEYS_URL, server.url)
    monkeypatch.setenv(ENV_KEYS_TTL, "3600")
    webhook.reset()
    yield signer
    webhook.reset()
    server.close()


@pytest.fixture
def secret(dynamodb: Any) -> str:
    ddb.reset_client()
    svc = KeyService()
    svc.create_plan("starter", actor="test")
    svc.create_tenant("acme", plan="starter", actor="test")
    made: str = svc.create_key("acme", actor="test")["secret"]
    return made


def post(signer: Signer, secret: str) -> dict[str, Any]:
    body = json.dumps(
        [{"token": secret, "type": "tollgate_api_key", "url": "https://gist.github.com/x/1",
          "source": "gist"}]
    ).encode()  # fmt: skip
    headers = {
        "Content-Type": "application/json",
        "Github-Public-Key-Identifier": signer.identifier,
        "Github-Public-Key-Signature": signer.sign(body),
    }
    return webhook.handler(webhook_event(body, headers), LambdaContext())


@pytest.mark.parametrize("kind", [ERROR, THROTTLE])
@pytest.mark.parametrize("operation", OPERATIONS)
def test_finding_5_a_dynamodb_failure_in_the_webhook_is_a_typed_503(
    faults: Faults, signer: Signer, secret: str, operation: str, kind: str
) -> None:
    faults.next_request(kind, operation=operation, times=50)  # past botocore's retries
    out = post(signer, secret)
    if not faults.snapshot():
        pytest.skip(f"the revocation made no {operation}")
    assert out["statusCode"] == 503
    assert json.loads(out["body"])["error"]["code"] == "service_unavailable"
    assert out["headers"]["Retry-After"] == "1"
    assert secret not in out["body"]
    faults.off()
    again = post(signer, secret)  # GitHub delivers it again: now it is revoked
    assert again["statusCode"] == 200
    assert json.loads(again["body"])[0]["label"] == "true_positive"
