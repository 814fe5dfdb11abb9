"""Issue 11, finding 3: path characters crashed the authorizer after the request was counted.

On 0.1.0 ``GET /v1/fine_tuning/jobs/a~b`` (and ``'``, ``!``, ``@``, ``(``, ``)``, ``,``,
``;``, ``=``) answered 503 with no usage event while the tenant's counter had moved, and a
``:`` gave an Allow for another resource (counted, then 403); a revoked key's replay got 503,
not 403. Here the real authorizer and API handlers run behind the local gateway
(tollgate/local/gateway.py, which builds the method ARN and evaluates the policy as API
Gateway does) on moto."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.test import Client

from functions.authorizer import handler
from functions.common import ddb
from functions.common.routes import route_for
from functions.keys import KeyService
from tests.authorizer_events import LambdaContext, request_event
from tests.integration.api_events import events_table, tenant_item
from tollgate.local.gateway import LocalGateway

FINDING = ["~", "'", "!", "@", "(", ")", ",", ";", "=", ":"]
MORE = ["*", " ", "$", "&", "+"]
JOB = route_for("GET", "/v1/fine_tuning/jobs/{id}")
TOOL = route_for("POST", "/v1/tools/{name}/invoke")
assert JOB and TOOL


@pytest.fixture
def world(dynamodb: Any) -> Iterator[dict[str, Any]]:
    ddb.reset_client()
    handler._store = None
    svc = KeyService()
    svc.create_plan("p", actor="test")
    svc.create_tenant("acme", plan="p", actor="test")
    live = svc.create_key("acme", actor="test")
    revoked = svc.create_key("acme", actor="test")
    svc.revoke(key_id=revoked["key_id"], reason="test", actor="test")
    yield {"client": Client(LocalGateway()), "live": live, "revoked": revoked, "db": dynamodb}
    handler._store = None


def state(world: dict[str, Any]) -> tuple[int, int]:
    """(the tenant's request counter, its usage events)."""
    return int(tenant_item(world["db"]).get("mreq") or 0), len(events_table(world["db"]))


def send(world: dict[str, Any], which: str, method: str, path: str) -> Any:
    headers = {"Authorization": f"Bearer {world[which]['secret']}"}
    return world["client"].open(path, method=method, headers=headers)


PATHS = [("GET", "/v1/fine_tuning/jobs/a{}b"), ("POST", "/v1/tools/a{}b/invoke")]


@pytest.mark.parametrize(("method", "template"), PATHS)
@pytest.mark.parametrize("ch", FINDING + MORE)
def test_path_characters_admitted_request_gets_its_answer_and_one_usage_event(
    world: dict[str, Any], ch: str, method: str, template: str
) -> None:
    before = state(world)
    resp = send(world, "live", method, template.format(ch))
    assert resp.status_code == 404, resp.get_data(as_text=True)
    assert resp.json["error"]["code"] in (
        "fine_tuning_job_not_found",
        "tool_not_found",
        "not_found",
    )
    counted, events = state(world)
    assert (counted - before[0], events - before[1]) == (1, 1)


@pytest.mark.parametrize(("method", "template"), PATHS)
@pytest.mark.parametrize("ch", FINDING + MORE)
def test_path_characters_revoked_key_is_403(
    world: dict[str, Any], ch: str, method: str, template: str
) -> None:
    before = state(world)
    resp = send(world, "revoked", method, template.format(ch))
    assert resp.status_code == 403, resp.get_data(as_text=True)
    assert resp.json["error"]["code"] == "key_revoked"
    assert state(world) == before


@pytest.mark.parametrize("ch", FINDING + MORE)
def test_path_characters_policy_allows_exactly_this_method_arn(
    world: dict[str, Any], ch: str
) -> None:
    event = request_event(
        JOB, {"x-api-key": world["live"]["secret"]}, f"/v1/fine_tuning/jobs/a{ch}b"
    )
    out = handler.handler(event, LambdaContext())
    assert out["policyDocument"]["Statement"] == [
        {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": [event["methodArn"]]}
    ]
    assert out["context"]["verdict"] == "allow"


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_a_malformed_method_arn_fails_before_the_gate_counts(world: dict[str, Any]) -> None:
    event = request_event(JOB, {"x-api-key": world["live"]["secret"]})
    del event["methodArn"]
    before = state(world)
    with pytest.raises(handler.AuthorizerUnavailable):
        handler.handler(event, LambdaContext())
    assert state(world) == before
