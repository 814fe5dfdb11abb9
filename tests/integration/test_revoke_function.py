"""The revoke function on moto: by key (with delegated keys), secret, tenant and principal;
idempotent; the exposure summary; the audit records; ``tollgate.key.revoked`` on the bus;
bad input of every shape refused with a typed error and nothing written; and the CLI's
``keys revoke`` through the function (``--local`` in-process, ``--stack`` by Lambda invoke,
stubbed with botocore's Stubber)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
)
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from functions.authorizer import handler as authorizer
from functions.common import ddb
from functions.common.config import TABLE_KINDS, TableNames
from functions.common.routes import route_for
from functions.keys import KeyService
from functions.respond import events
from functions.revoke import handler as revoke_fn
from tests.authorizer_events import request_event
from tests.detect_events import LambdaContext
from tests.integration.conftest import Run

_CHAT = route_for("POST", "/v1/chat/completions")
assert _CHAT
CHAT = _CHAT


def verdict(secret: str) -> str:
    event = APIGatewayAuthorizerRequestEvent(
        request_event(CHAT, {"Authorization": f"Bearer {secret}"})
    )
    decision, _ = authorizer.decide(event, time.time())
    return decision.code if not decision.admitted else "allow"


@pytest.fixture
def keys(dynamodb: Any) -> Iterator[dict[str, dict[str, Any]]]:
    ddb.reset_client()
    authorizer._store = None
    svc = KeyService()
    svc.create_plan("starter", actor="test")
    for tenant in ("acme", "other"):
        svc.create_tenant(tenant, plan="starter", actor="test")
    parent = svc.create_key("acme", principal="svc", actor="test")
    child = svc.delegate_key(parent["key_id"], principal="agent-1", actor="test")
    bot = svc.create_key("acme", principal="bot", actor="test")
    bot2 = svc.create_key("acme", environment="test", principal="bot", actor="test")
    elsewhere = svc.create_key("other", principal="svc", actor="test")
    yield {"parent": parent, "child": child, "bot": bot, "bot2": bot2, "other": elsewhere}
    authorizer._store = None


def call(payload: Any) -> dict[str, Any]:
    return revoke_fn.handler(payload, LambdaContext())


def test_revoking_a_key_revokes_its_delegated_keys_at_once(keys: dict[str, Any]) -> None:
    parent, child = keys["parent"], keys["child"]
    assert verdict(parent["secret"]) == verdict(child["secret"]) == "allow"
    result = call({"key_id": parent["key_id"], "reason": "leaked in a gist", "actor": "oncall"})
    assert result["ok"] is True and result["via"] == "key"
    assert result["revoked"] == [parent["key_id"], child["key_id"]]
    assert verdict(parent["secret"]) == "key_revoked"
    assert verdict(child["secret"]) == "key_revoked"
    assert verdict(keys["bot"]["secret"]) == "allow"

    summaries = {s["key_id"]: s for s in result["exposure"]}
    assert set(summaries) == {parent["key_id"], child["key_id"]}
    assert summaries[parent["key_id"]]["billable"] is True
    assert summaries[parent["key_id"]]["status"] == "revoked"
    assert set(summaries[parent["key_id"]]["usage"]) == {"24h", "7d", "30d"}
    audit = KeyService().audit(key_id=child["key_id"])
    (record,) = [r for r in audit if r["action"] == "key.revoked"]
    assert record["actor"] == "oncall" and record["details"]["cascade_from"] == parent["key_id"]
    text = json.dumps(result)
    assert parent["secret"] not in text and child["secret"] not in text


def test_revoking_is_idempotent(keys: dict[str, Any]) -> None:
    payload = {"key_id": keys["parent"]["key_id"], "reason": "leak", "actor": "oncall"}
    first, second = call(payload), call(payload)
    assert first["revoked"] == second["revoked"] and second["ok"] is True
    assert verdict(keys["parent"]["secret"]) == "key_revoked"


def test_revoke_by_secret_tenant_and_principal(keys: dict[str, Any]) -> None:
    by_secret = call({"secret": keys["bot"]["secret"], "reason": "leak", "actor": "oncall"})
    assert by_secret["revoked"] == [keys["bot"]["key_id"]] and by_secret["via"] == "secret"

    by_principal = call(
        {"tenant_id": "acme", "principal": "bot", "reason": "compromised", "actor": "oncall"}
    )
    assert set(by_principal["revoked"]) == {keys["bot"]["key_id"], keys["bot2"]["key_id"]}
    assert verdict(keys["bot2"]["secret"]) == "key_revoked"
    assert verdict(keys["parent"]["secret"]) == "allow"

    by_tenant = call({"tenant_id": "acme", "reason": "offboarded", "actor": "oncall"})
    assert set(by_tenant["revoked"]) >= {keys["parent"]["key_id"], keys["child"]["key_id"]}
    assert verdict(keys["parent"]["secret"]) == "key_revoked"
    assert verdict(keys["other"]["secret"]) == "allow"


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ("revoke key_x", 400, "invalid_input"),
        ([], 400, "invalid_input"),
        ({"key_id": "key_AAAAAAAAAAAAAAAA", "actor": "oncall"}, 400, "invalid_input"),
        ({"key_id": "key_AAAAAAAAAAAAAAAA", "reason": "x"}, 400, "invalid_input"),
        ({"key_id": "key_AAAAAAAAAAAAAAAA", "reason": " ", "actor": "a"}, 400, "invalid_input"),
        ({"reason": "x", "actor": "a"}, 400, "invalid_input"),
        ({"key_id": "k", "tenant_id": "acme", "reason": "x", "actor": "a"}, 400, "invalid_input"),
        ({"principal": "bot", "reason": "x", "actor": "a"}, 400, "invalid_input"),
        ({"tenant_id": "acme", "reason": "x", "actor": "a", "force": True}, 400, "invalid_input"),
        ({"key_id": "key_AAAAAAAAAAAAAAAA", "reason": "x", "actor": "a"}, 404, "not_found"),
        ({"key_id": "not-a-key-id", "reason": "x", "actor": "a"}, 400, "invalid_input"),
        ({"secret": "tg_live_mistyped", "reason": "x", "actor": "a"}, 400, "invalid_input"),
        ({"tenant_id": "nope", "principal": "bot", "reason": "x", "actor": "a"}, 404, "not_found"),
        (
            {"tenant_id": "acme", "principal": "nobody", "reason": "x", "actor": "a"},
            404,
            "not_found",
        ),
        ({"tenant_id": "acme", "reason": "x" * 1001, "actor": "a"}, 400, "invalid_input"),
    ],
)
def test_bad_input_gets_a_typed_error_and_writes_nothing(
    keys: dict[str, Any],
    snapshot: Callable[[], dict[str, list[str]]],
    payload: Any,
    status: int,
    code: str,
) -> None:
    before = snapshot()
    result = call(payload)
    assert result["ok"] is False and result["status"] == status
    assert result["error"]["code"] == code and result["error"]["message"]
    assert "Traceback" not in json.dumps(result) and "tg_live_mistyped" not in json.dumps(result)
    assert snapshot() == before
    assert verdict(keys["parent"]["secret"]) == "allow"


def test_a_secret_given_as_key_id_is_refused_without_echo(keys: dict[str, Any]) -> None:
    secret = keys["parent"]["secret"]
    result = call({"key_id": secret, "reason": "x", "actor": "a"})
    assert result["status"] == 400 and secret not in json.dumps(result)


def test_an_unexpected_failure_is_a_typed_500(
    keys: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("dynamodb exploded")

    monkeypatch.setattr(revoke_fn, "revoke", broken)
    result = call({"key_id": keys["parent"]["key_id"], "reason": "x", "actor": "a"})
    assert result["status"] == 500 and result["error"]["code"] == "internal_error"
    assert "exploded" not in json.dumps(result)


def test_the_revoked_event_reaches_the_bus(
    keys: dict[str, Any], moto_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    bus = "tollgate-test-bus"
    eb, sqs = boto3.client("events"), boto3.client("sqs")
    eb.create_event_bus(Name=bus)
    queue = sqs.create_queue(QueueName="revoked")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    eb.put_rule(
        Name="alerts",
        EventBusName=bus,
        EventPattern=json.dumps({"source": ["tollgate"], "detail-type": [events.KEY_REVOKED]}),
    )
    eb.put_targets(Rule="alerts", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn["QueueArn"]}])
    monkeypatch.setenv(events.ENV_EVENT_BUS, bus)
    events.reset_client()
    result = call({"secret": keys["parent"]["secret"], "reason": "gist", "actor": "oncall"})
    assert result["event_published"] is True
    (message,) = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    body = json.loads(message["Body"])
    assert body["detail-type"] == events.KEY_REVOKED and body["source"] == "tollgate"
    assert body["detail"]["revoked"] == [keys["parent"]["key_id"], keys["child"]["key_id"]]
    assert body["detail"]["via"] == "secret" and body["detail"]["actor"] == "oncall"
    assert keys["parent"]["secret"] not in message["Body"]
    events.reset_client()


# -- the CLI -------------------------------------------------------------------------
def test_cli_local_runs_the_function_in_process(
    cli: Run, keys: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    called: list[Any] = []
    real = revoke_fn.handle

    def spy(payload: Any) -> dict[str, Any]:
        called.append(payload)
        return real(payload)

    monkeypatch.setattr(revoke_fn, "handle", spy)
    monkeypatch.setattr("tollgate.local.aws.point_clients_at", lambda endpoint: None)
    out = cli("--local", "keys", "revoke", keys["parent"]["key_id"], "--reason", "leak").ok()
    assert out.json["revoked"] == [keys["parent"]["key_id"], keys["child"]["key_id"]]
    assert out.json["exposure"][0]["key_id"] == keys["parent"]["key_id"]
    assert called and called[0]["actor"] == "test:operator"
    assert verdict(keys["child"]["secret"]) == "key_revoked"


def test_cli_principal_needs_a_tenant(cli: Run, keys: dict[str, Any]) -> None:
    bad = cli("keys", "revoke", "--principal", "bot", "--reason", "x")
    assert bad.code == 2 and "--tenant" in bad.err
    ok = cli("keys", "revoke", "--tenant", "acme", "--principal", "bot", "--reason", "x").ok()
    assert set(ok.json["revoked"]) == {keys["bot"]["key_id"], keys["bot2"]["key_id"]}


def _stack_outputs() -> dict[str, str]:
    names = TableNames()
    outputs = {f"Table{k.capitalize()}": getattr(names, k) for k in TABLE_KINDS}
    outputs["RevokeFunctionName"] = "Tollgate-dev-Revoke-abc123"
    return outputs


def _stubbed_lambda(answer: dict[str, Any], expect: dict[str, Any]) -> Any:
    import boto3

    client = boto3.client("lambda", region_name="us-east-1")
    stubber = Stubber(client)
    payload = json.dumps(answer).encode()
    stubber.add_response(
        "invoke",
        {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(payload), len(payload))},
        {"FunctionName": "Tollgate-dev-Revoke-abc123", "InvocationType": "RequestResponse",
         "Payload": ANY},
    )  # fmt: skip
    stubber.activate()
    original = client.invoke

    def invoke(**kwargs: Any) -> Any:
        sent = json.loads(kwargs["Payload"])
        for k, v in expect.items():
            assert sent[k] == v, (k, sent)
        return original(**kwargs)

    client.invoke = invoke
    return client


def test_cli_stack_invokes_the_deployed_function(
    cli: Run,
    keys: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    snapshot: Callable[[], dict[str, list[str]]],
) -> None:
    monkeypatch.setattr("tollgate.cli.stack.read_outputs", lambda name: _stack_outputs())
    secret = keys["parent"]["secret"]
    answer = {"ok": True, "revoked": ["key_FROMTHEFUNCTION1"], "via": "secret", "exposure": []}
    client = _stubbed_lambda(answer, {"secret": secret, "reason": "leak", "actor": "test:operator"})
    monkeypatch.setattr("tollgate.cli.revoke.lambda_client", lambda: client)
    before = snapshot()
    out = cli("--stack", "Tollgate-dev", "keys", "revoke", "--secret", "-", "--reason", "leak",
              input=secret + "\n").ok()  # fmt: skip
    assert out.json["revoked"] == ["key_FROMTHEFUNCTION1"]
    assert secret not in out.out + out.err
    assert snapshot() == before  # the deployed function did the writing, not the CLI


def test_cli_stack_maps_the_functions_typed_errors_to_exit_codes(
    cli: Run, keys: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tollgate.cli.stack.read_outputs", lambda name: _stack_outputs())
    refused = {
        "ok": False,
        "status": 404,
        "error": {"code": "not_found", "message": "unknown key 'key_AAAAAAAAAAAAAAAA'"},
    }
    client = _stubbed_lambda(refused, {"key_id": "key_AAAAAAAAAAAAAAAA"})
    monkeypatch.setattr("tollgate.cli.revoke.lambda_client", lambda: client)
    out = cli("--stack", "Tollgate-dev", "keys", "revoke", "key_AAAAAAAAAAAAAAAA", "--reason", "x")
    assert out.code == 2 and "unknown key" in out.err and out.out == ""

    broken = {"ok": False, "status": 500, "error": {"code": "internal_error", "message": "boom"}}
    client = _stubbed_lambda(broken, {})
    monkeypatch.setattr("tollgate.cli.revoke.lambda_client", lambda: client)
    out = cli("--stack", "Tollgate-dev", "keys", "revoke", "key_AAAAAAAAAAAAAAAA", "--reason", "x")
    assert out.code == 1 and "boom" in out.err
