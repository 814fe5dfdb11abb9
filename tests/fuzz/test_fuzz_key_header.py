"""The key header through the real authorizer handler on moto, with real keys in the table.

tests/unit/test_authorizer_logic.py holds the property for malformed keys without I/O; this
suite extends it to whole header maps a stranger controls: several key headers at once
(Authorization and x-api-key, any case, repeated, multi-value disagreeing with single-
value), near misses of real keys (one character changed, cut, extended, whitespace or
control characters around, the other environment's prefix), revoked keys, and random
routes and resources. For any of them the handler raises exactly ``Unauthorized`` (401) or
returns a policy; it allows only when the very secret of an active key was sent, and then
names that key; it never raises anything else."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, event, given
from hypothesis import strategies as st

from functions.authorizer import handler
from functions.common import keyformat
from functions.common.routes import ROUTES
from tests.authorizer_events import request_event
from tests.fuzz.support import count, fuzz
from tests.integration.api_events import LambdaContext

NAMES = [
    "Authorization",
    "authorization",
    "AUTHORIZATION",
    "x-api-key",
    "X-Api-Key",
    "X-API-KEY",
    "Cookie",
    "Proxy-Authorization",
    "x-api-key2",
]
SCHEMES = ["Bearer ", "bearer ", "BEARER ", "Bearer  ", "Basic ", "", " Bearer ", "Bearer\t"]


@pytest.fixture
def keys(dynamodb: Any) -> dict[str, dict[str, Any]]:
    from functions.common import ddb
    from functions.keys import KeyService

    ddb.reset_client()
    handler._store = None
    svc = KeyService()
    svc.create_plan("fuzz", actor="fuzz")
    svc.create_tenant("acme", plan="fuzz", actor="fuzz")
    made = {
        "live": svc.create_key("acme", actor="fuzz"),
        "test": svc.create_key("acme", environment="test", actor="fuzz"),
        "revoked": svc.create_key("acme", actor="fuzz"),
    }
    svc.revoke(key_id=made["revoked"]["key_id"], reason="fuzz", actor="fuzz")
    return made


@st.composite
def near_miss(draw: st.DrawFn, secret: str) -> str:
    how = draw(st.sampled_from(["change", "cut", "extend", "wrap", "prefix", "case", "same"]))
    if how == "change":
        i = draw(st.integers(0, len(secret) - 1))
        c = draw(st.characters(codec="utf-8").filter(lambda ch: ch != secret[i]))
        return secret[:i] + c + secret[i + 1 :]
    if how == "cut":
        return secret[: draw(st.integers(0, len(secret) - 1))]
    if how == "extend":
        return secret + draw(st.text(min_size=1, max_size=5))
    if how == "wrap":
        return (
            draw(st.sampled_from([" ", "\t", "\n", "\x00", "\u200b", '"']))
            + secret
            + draw(st.sampled_from(["", " ", "\r\n", "\x00", '"']))
        )
    if how == "prefix":
        other = "tg_test_" if secret.startswith("tg_live_") else "tg_live_"
        return other + secret[8:]
    if how == "case":
        return secret.swapcase()
    return secret


@st.composite
def header_maps(draw: st.DrawFn, keys: dict[str, dict[str, Any]]) -> dict[str, Any]:
    secrets = [k["secret"] for k in keys.values()]
    value = st.one_of(
        st.sampled_from(secrets).flatmap(lambda s: near_miss(s)),
        st.sampled_from(secrets),
        st.builds(keyformat.generate, st.sampled_from(["live", "test"])),  # unknown
        st.text(max_size=60),
    )
    pairs = draw(
        st.one_of(
            st.lists(
                st.tuples(st.sampled_from(NAMES), st.sampled_from(SCHEMES), value), max_size=3
            ),
            # one key header carrying a real secret (or its near miss), maybe with a stray header
            st.tuples(
                st.sampled_from(NAMES[:6]), st.sampled_from(SCHEMES[:4]), st.sampled_from(secrets)
            ).map(lambda p: [p]),
            st.lists(
                st.tuples(
                    st.sampled_from(NAMES), st.sampled_from(SCHEMES), st.sampled_from(secrets)
                ),
                min_size=1,
                max_size=2,
            ),
        )
    )
    headers: dict[str, Any] = {}
    multi: dict[str, list[str]] = {}
    for name, scheme, v in pairs:
        text = scheme + v if name.lower() in ("authorization", "proxy-authorization") else v
        headers[name] = text
        multi.setdefault(name, []).append(text)
    if draw(st.booleans()):  # a multi-value view that disagrees with the single-value one
        name = draw(st.sampled_from(NAMES))
        multi.setdefault(name, []).append(draw(value))
    return {"headers": headers, "multi": multi}


def _sent(maps: dict[str, Any]) -> list[str]:
    """Every key value sent in a key header (scheme removed), single- and multi-value."""
    found = []
    for source in (maps["headers"], maps["multi"]):
        for name, raw in source.items():
            for v in raw if isinstance(raw, list) else [raw]:
                parts = v.strip().split(None, 1)
                if name.lower() == "authorization" and len(parts) == 2:
                    found.append(parts[1].strip())
                elif name.lower() in ("authorization", "x-api-key"):
                    found.append(v.strip())
    return found


@fuzz(120)
@given(data=st.data(), route=st.sampled_from([r for r in ROUTES if r.authorized]))
def test_any_header_map_is_401_or_a_policy_and_allows_only_an_exact_active_key(
    keys: dict[str, dict[str, Any]], data: st.DataObject, route: Any
) -> None:
    count("authorizer header map")
    maps = data.draw(header_maps(keys))
    request = request_event(route, maps["headers"], multi=maps["multi"])
    try:
        policy = handler.handler(request, LambdaContext())
    except handler.Unauthorized:
        event("401")
        return
    effect = policy["policyDocument"]["Statement"][0]["Effect"]
    event(f"{effect} {policy['context'].get('code', '')}")
    assert effect in ("Allow", "Deny")
    if effect == "Allow" and policy["context"]["verdict"] == "allow":
        admitted = policy["context"]["key_id"]
        by_id = {k["key_id"]: k for k in keys.values()}
        assert admitted in by_id and admitted != keys["revoked"]["key_id"]
        assert by_id[admitted]["secret"] in _sent(maps), "allowed only for the exact secret"
        assert policy["context"]["environment"] in route.environments


@fuzz(40)
@given(
    resource=st.one_of(st.text(max_size=40), st.sampled_from([r.path for r in ROUTES])),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "get", "", "PATCH"]),
)
def test_any_route_shape_is_401_or_a_policy(
    keys: dict[str, dict[str, Any]], resource: str, method: str
) -> None:
    count("authorizer route shape")
    route = next(r for r in ROUTES if r.authorized)
    event = request_event(route, {"Authorization": f"Bearer {keys['live']['secret']}"})
    event["resource"], event["httpMethod"] = resource, method
    assume(method or resource)
    try:
        policy = handler.handler(event, LambdaContext())
    except handler.Unauthorized:
        return
    assert policy["policyDocument"]["Statement"][0]["Effect"] in ("Allow", "Deny")


def test_the_real_keys_are_allowed_at_all(keys: dict[str, dict[str, Any]]) -> None:
    """The properties above are not vacuous: the exact secrets do get through."""
    route = next(r for r in ROUTES if r.path == "/v1/models")
    for kind in ("live", "test"):
        event = request_event(route, {"x-api-key": keys[kind]["secret"]})
        policy = handler.handler(event, LambdaContext())
        assert policy["context"]["verdict"] == "allow", policy
