"""Path parameters a stranger controls, through the local gateway (the real authorizer and API
handlers on moto; tollgate/local/gateway.py builds the method ARN and evaluates the policy as
API Gateway does): issue 11, finding 3.

For every route with a path parameter and any value of it (any UTF-8 character but ``/``,
sent percent-encoded or with RFC 3986 sub-delimiters left raw), an active key's request is
admitted and leaves exactly one usage event (the gate's counter and the usage events move
together, by one), a revoked key's is 403 ``key_revoked`` and moves nothing, and nothing
answers 5xx (no fault is injected here)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from werkzeug.test import Client

from functions.authorizer import handler
from functions.common import ddb
from functions.common.routes import ROUTES, Route, match
from functions.keys import KeyService
from tests.fuzz.support import count, fuzz, openai_error
from tests.integration.api_events import events_table, tenant_item
from tollgate.local.gateway import LocalGateway

PARAMETRISED = [r for r in ROUTES if r.authorized and "{" in r.path]
SUB_DELIMS = "!$&'()*+,;=:@~"  # RFC 3986 pchar punctuation a client may send unencoded
SPECIAL = [*SUB_DELIMS, "?", "#", "%", " ", '"', "[", "]", "{", "}", "|", "\\", "^", "`"]


@pytest.fixture
def world(dynamodb: Any) -> Iterator[dict[str, Any]]:
    ddb.reset_client()
    handler._store = None
    svc = KeyService()
    svc.create_plan("fuzz", actor="fuzz")  # no limits: every active-key request is admitted
    svc.create_tenant("acme", plan="fuzz", actor="fuzz")
    live = svc.create_key("acme", actor="fuzz")
    revoked = svc.create_key("acme", actor="fuzz")
    svc.revoke(key_id=revoked["key_id"], reason="fuzz", actor="fuzz")
    yield {"client": Client(LocalGateway()), "live": live, "revoked": revoked, "db": dynamodb}
    handler._store = None


values = st.text(
    st.one_of(
        st.sampled_from(SPECIAL),
        st.characters(codec="utf-8", exclude_characters="/"),
    ),
    min_size=1,
    max_size=24,
)


def state(world: dict[str, Any]) -> tuple[int, int]:
    """(the tenant's request counter, its usage events)."""
    return int(tenant_item(world["db"]).get("mreq") or 0), len(events_table(world["db"]))


def concrete(route: Route, encoded: dict[str, str]) -> str:
    parts = []
    for seg in route.segments:
        parts.append(encoded[seg[1:-1]] if seg.startswith("{") else seg)
    return "/" + "/".join(parts)


@fuzz(30, deep_max=400)
@given(
    route=st.sampled_from(PARAMETRISED),
    data=st.data(),
    raw_sub_delims=st.booleans(),
)
def test_every_admitted_request_has_exactly_one_usage_event(
    world: dict[str, Any], route: Route, data: st.DataObject, raw_sub_delims: bool
) -> None:
    count("path parameters")
    names = [seg[1:-1] for seg in route.segments if seg.startswith("{")]
    params = {name: data.draw(values, label=name) for name in names}
    safe = SUB_DELIMS if raw_sub_delims else ""
    path = concrete(route, {n: quote(v, safe=safe) for n, v in params.items()})
    matched = match(route.method, unquote(path))
    assert matched is not None and matched[0] == route, path  # not vacuous: the route is hit
    client = world["client"]

    before = state(world)
    live = client.open(path, method=route.method, headers={"x-api-key": world["live"]["secret"]})
    after = state(world)
    event(f"{route.operation}: {live.status_code}")
    assert live.status_code < 500, (path, live.status_code, live.get_data(as_text=True)[:300])
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1), (path, live.status_code)

    denied = client.open(
        path, method=route.method, headers={"Authorization": f"Bearer {world['revoked']['secret']}"}
    )
    assert denied.status_code == 403, (path, denied.status_code, denied.get_data(as_text=True))
    assert openai_error(denied.get_data(as_text=True))["code"] == "key_revoked"
    assert state(world) == after
