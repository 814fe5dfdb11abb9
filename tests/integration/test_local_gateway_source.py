"""A key bound to networks through the local gateway (``tollgate/local/gateway.py``), which
fills ``requestContext.identity.sourceIp`` from the TCP peer as API Gateway does: the 403
``source_not_allowed`` body the ``ACCESS_DENIED`` gateway response renders
(functions/common/routes.py), and that a client-written ``X-Forwarded-For`` changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from werkzeug.test import Client

from functions.authorizer import handler as authorizer
from functions.common import ddb
from functions.keys.service import KeyService
from tollgate.local.gateway import LocalGateway


@pytest.fixture
def gateway(dynamodb: Any) -> Any:
    ddb.reset_client()
    authorizer._store = None
    lines: list[dict[str, Any]] = []
    yield Client(LocalGateway(access_log=lines.append)), lines
    authorizer._store = None


def get(client: Client, secret: str, peer: str, **headers: str) -> Any:
    return client.get(
        "/v1/models",
        headers={"Authorization": f"Bearer {secret}", **headers},
        environ_overrides={"REMOTE_ADDR": peer},
    )


def test_bound_key_through_the_local_gateway(gateway: Any) -> None:
    client, lines = gateway
    svc = KeyService()
    svc.create_plan("p", actor="test")
    svc.create_tenant("acme", plan="p", actor="test")
    v4 = svc.create_key("acme", allow_cidrs=["10.0.0.0/8"], actor="test")
    v6 = svc.create_key("acme", allow_cidrs=["2001:db8::/32"], actor="test")

    assert get(client, v4["secret"], "10.1.2.3").status_code == 200
    refused = get(client, v4["secret"], "192.0.2.5")
    assert refused.status_code == 403
    assert refused.json["error"]["code"] == "source_not_allowed"
    assert refused.json["error"]["type"] == "permission_error"
    assert "network" in refused.json["error"]["message"]
    spoofed = get(client, v4["secret"], "192.0.2.5", **{"X-Forwarded-For": "10.1.2.3",
                                                         "X-Real-IP": "10.1.2.3"})  # fmt: skip
    assert spoofed.status_code == 403 and spoofed.json["error"]["code"] == "source_not_allowed"
    assert get(client, v6["secret"], "2001:db8:9::1").status_code == 200
    assert get(client, v6["secret"], "2001:db9::1").status_code == 403
    assert get(client, v6["secret"], "10.1.2.3").status_code == 403
    denied = [line for line in lines if line["status"] == "403"]
    assert {line["errorType"] for line in denied} == {"ACCESS_DENIED"}
    assert {line["ip"] for line in denied} >= {"192.0.2.5", "2001:db9::1"}
