"""The authorizer's decisions without I/O: header parsing, fact checks, diagnosis."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.authorizer import handler, logic
from functions.common import gate, keyformat
from functions.common.routes import ROUTES, route_for
from tests.authorizer_events import LambdaContext, request_event

CHAT = route_for("POST", "/v1/chat/completions")
JOBS = route_for("GET", "/v1/fine_tuning/jobs")
MODELS = route_for("GET", "/v1/models")
assert CHAT and JOBS and MODELS
NOW = 1_790_000_000.0


def facts(**over: Any) -> logic.Facts:
    base: dict[str, Any] = dict(
        key_id="key_a", tenant_id="acme", environment="live", principal="svc",
        scopes=frozenset({"inference:invoke"}), parent_key_id=None, expires_at=None, serial=1,
    )  # fmt: skip
    base.update(over)
    return logic.Facts(**base)


def tenant_item(entry: dict[str, Any] | None = None, **over: Any) -> dict[str, Any]:
    e = gate.new_entry()
    e.update({"w": gate.minute_window(NOW), "c": 0})
    if entry:
        e.update(entry)
    item: dict[str, Any] = {
        "tenant_id": "acme", "status": "active", "plan": "starter",
        "plan_scopes": ["inference:invoke", "tools:execute", "finetune:read"],
        "mo": gate.month_window(NOW), "mreq": 0, "mtok": 0, "gate": {"key_a": e},
    }  # fmt: skip
    item.update(over)
    return item


class TestExtractKey:
    def test_bearer_and_x_api_key(self) -> None:
        key = keyformat.generate("live")
        for headers in ({"Authorization": f"Bearer {key}"}, {"x-api-key": key},
                        {"authorization": f"bearer {key}", "X-Api-Key": key}):  # fmt: skip
            parsed = logic.extract_key(headers)
            assert isinstance(parsed, keyformat.ParsedKey)
            assert parsed.secret_hash == keyformat.hash_secret(key)

    def test_missing(self) -> None:
        assert logic.extract_key({}) is logic.MISSING_KEY
        assert logic.extract_key(None) is logic.MISSING_KEY

    @pytest.mark.parametrize("value", ["Basic abc", "Bearer", "Bearer   ", "tg_live_x"])
    def test_malformed_authorization(self, value: str) -> None:
        assert logic.extract_key({"Authorization": value}) is logic.MALFORMED_KEY

    def test_two_different_keys_or_repeated_header_are_refused(self) -> None:
        a, b = keyformat.generate("live"), keyformat.generate("live")
        assert logic.extract_key({"Authorization": f"Bearer {a}", "x-api-key": b}) is (
            logic.MALFORMED_KEY
        )
        assert logic.extract_key({}, {"x-api-key": [a, a]}) is logic.MALFORMED_KEY


class TestCheckFacts:
    def test_ok(self) -> None:
        parsed = keyformat.ParsedKey("live", "h")
        assert logic.check_facts(facts(), parsed, CHAT, NOW) is None

    def test_expired(self) -> None:
        parsed = keyformat.ParsedKey("live", "h")
        assert logic.check_facts(facts(expires_at=int(NOW)), parsed, CHAT, NOW) is logic.KEY_EXPIRED

    def test_test_key_on_live_only_route(self) -> None:
        parsed = keyformat.ParsedKey("test", "h")
        f = facts(environment="test", scopes=frozenset({"finetune:read"}))
        decision = logic.check_facts(f, parsed, JOBS, NOW)
        assert decision and decision.code == "wrong_environment" and decision.kind == "deny"

    def test_missing_scope(self) -> None:
        parsed = keyformat.ParsedKey("live", "h")
        decision = logic.check_facts(facts(), parsed, JOBS, NOW)
        assert decision and decision.code == "insufficient_scope"

    def test_any_valid_key_route(self) -> None:
        parsed = keyformat.ParsedKey("live", "h")
        assert logic.check_facts(facts(scopes=frozenset()), parsed, MODELS, NOW) is None


class TestDiagnose:
    def test_reasons(self) -> None:
        cases: list[tuple[dict[str, Any], logic.Facts, str]] = [
            ({"status": "suspended"}, facts(), "tenant_inactive"),
            ({"gate": {}}, facts(), "key_revoked"),
            ({"gate": {"key_a": {"s": "revoked"}}}, facts(), "key_revoked"),
            ({"gate": {"key_a": {"s": "suspended"}}}, facts(), "key_suspended"),
            ({"plan_scopes": []}, facts(), "scope_not_in_plan"),
            ({"lim_tmo": 10, "mtok": 10}, facts(), "insufficient_quota"),
            ({"lim_rmo": 5, "mreq": 5}, facts(), "quota_exceeded"),
        ]
        for over, f, code in cases:
            d = logic.diagnose(tenant_item(**over), f, CHAT, NOW)
            assert isinstance(d, logic.Decision) and d.code == code, (over, d)

    def test_missing_tenant(self) -> None:
        assert logic.diagnose(None, facts(), CHAT, NOW) is logic.TENANT_INACTIVE

    def test_rate_limit_with_retry_after(self) -> None:
        d = logic.diagnose(tenant_item({"c": 3}, lim_rpm=3), facts(), CHAT, NOW)
        assert isinstance(d, logic.Decision) and d.code == "rate_limit_exceeded"
        assert 1 <= d.retry_after <= 60

    def test_rotation_grace(self) -> None:
        in_grace = tenant_item({"n": 2, "g": NOW + 60})
        assert isinstance(logic.diagnose(in_grace, facts(serial=1), CHAT, NOW), logic.Windows)
        over = tenant_item({"n": 2, "g": NOW - 1})
        assert logic.diagnose(over, facts(serial=1), CHAT, NOW) is logic.ROTATED_OUT
        two_back = tenant_item({"n": 3, "g": NOW + 60})
        assert logic.diagnose(two_back, facts(serial=1), CHAT, NOW) is logic.ROTATED_OUT

    def test_delegated(self) -> None:
        child = facts(key_id="key_c", parent_key_id="key_a")
        item = tenant_item()
        item["gate"]["key_c"] = {**gate.new_entry(parent_key_id="key_a", token_budget=5), "u": 5}
        d = logic.diagnose(item, child, CHAT, NOW)
        assert isinstance(d, logic.Decision) and d.code == "insufficient_quota"
        item["gate"]["key_a"]["s"] = "suspended"
        assert logic.diagnose(item, child, CHAT, NOW) is logic.PARENT_INACTIVE

    def test_stale_windows(self) -> None:
        item = tenant_item({"w": 1, "c": 99}, lim_rpm=3, mo="2000-01", mreq=99, lim_rmo=5)
        d = logic.diagnose(item, facts(), CHAT, NOW)
        assert isinstance(d, logic.Windows) and (d.minute_stale, d.month_stale) == (True, True)
        assert d.minute == gate.minute_window(NOW) and d.month == gate.month_window(NOW)

    def test_windows_never_move_back(self) -> None:
        ahead = tenant_item({"w": gate.minute_window(NOW) + 1, "c": 0}, mo="2999-01")
        d = logic.diagnose(ahead, facts(), CHAT, NOW)
        assert isinstance(d, logic.Windows) and not d.minute_stale and not d.month_stale
        assert d.minute == gate.minute_window(NOW) + 1 and d.month == "2999-01"


class _NoDynamoDB:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"DynamoDB was called ({name}) for a key that cannot be valid")


header_values = st.one_of(
    st.text(max_size=120),
    st.builds(
        lambda k, i, c: k[:i] + c + k[i + 1 :],
        st.sampled_from([keyformat.generate("live"), keyformat.generate("test")]),
        st.integers(0, keyformat.KEY_LEN - 1),
        st.characters(codec="ascii"),
    ),
    st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(["Authorization", "authorization", "x-api-key", "X-API-KEY", "Cookie"]),
    scheme=st.sampled_from(["Bearer ", "bearer ", "", "Basic ", "Bearer  "]),
    value=header_values,
    route=st.sampled_from([r for r in ROUTES if r.authorized]),
)
def test_bad_keys_never_raise_never_allow_never_read(
    monkeypatch: pytest.MonkeyPatch, name: str, scheme: str, value: str, route: Any
) -> None:
    if keyformat.parse(value) is not None:  # a one-character change that kept the checksum valid
        return
    monkeypatch.setattr("functions.common.ddb.client", lambda: _NoDynamoDB())
    header = scheme + value if name.lower() == "authorization" else value
    event = request_event(route, {name: header})
    with pytest.raises(handler.Unauthorized):
        handler.handler(event, LambdaContext())


def test_unknown_route_is_denied_without_io(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("functions.common.ddb.client", lambda: _NoDynamoDB())
    event = request_event(CHAT, {"x-api-key": keyformat.generate("live")})
    event["resource"] = "/v1/admin"
    out = handler.handler(event, LambdaContext())
    assert out["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    assert out["context"]["code"] == "unknown_route"
