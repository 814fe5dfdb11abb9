"""The authorizer's decisions without I/O: header parsing, fact checks, diagnosis."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.authorizer import handler, logic
from functions.common import keyformat
from functions.common.routes import ROUTES, route_for
from functions.gate import admission as ad
from functions.gate import items as gate
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


def key_item(**over: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"s": "active", "w": gate.minute_window(NOW), "c": 0, "n": 1, "g": 0}
    item.update(over)
    return item


def shard(**over: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "st": "active", "pl": "starter", "sc": ["inference:invoke", "tools:execute"],
        "mo": gate.month_window(NOW), "rq": 0, "tk": 0, "ns": 1, "ix": 0,
    }  # fmt: skip
    item.update(over)
    return item


def diagnose_shard(item: dict[str, Any] | None, f: ad.Facts | None = None, rpm: Any = None) -> Any:
    return ad.diagnose_shard(
        item, f or facts(), CHAT, NOW, gate.month_window(NOW), rpm, "tollgate-gate"
    )


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
    """The Python form of the admission rule (``functions/gate/admission.py``); that it agrees
    with the conditional writes is tests/integration/test_gate_rule_agrees.py."""

    def test_key_reasons(self) -> None:
        cases: list[tuple[dict[str, Any], str]] = [
            ({"s": "revoked"}, "key_revoked"),
            ({"s": "suspended"}, "key_suspended"),
            ({"c": 3}, "rate_limit_exceeded"),
        ]
        for over, code in cases:
            d = ad.diagnose_key(key_item(**over), facts(), NOW, 3)
            assert isinstance(d, logic.Decision) and d.code == code, (over, d)
        assert ad.diagnose_key(None, facts(), NOW, 3) is None  # no item at all

    def test_shard_reasons(self) -> None:
        cases: list[tuple[dict[str, Any], str]] = [
            ({"st": "suspended"}, "tenant_inactive"),
            ({"sc": []}, "scope_not_in_plan"),
            ({"ta": 10, "tk": 10}, "insufficient_quota"),
            ({"ra": 5, "rq": 5}, "quota_exceeded"),
        ]
        for over, code in cases:
            d = diagnose_shard(shard(**over))
            assert isinstance(d, logic.Decision) and d.code == code, (over, d)
        assert diagnose_shard(None) is None

    def test_test_keys_have_their_own_refusal_text(self) -> None:
        d = diagnose_shard(shard(ra=5, rq=5), facts(environment="test"))
        assert isinstance(d, logic.Decision) and "test-key" in d.message

    def test_rate_limit_with_retry_after(self) -> None:
        d = ad.diagnose_key(key_item(c=3), facts(), NOW, 3)
        assert isinstance(d, logic.Decision) and d.code == "rate_limit_exceeded"
        assert 1 <= d.retry_after <= 60

    def test_rotation_grace(self) -> None:
        in_grace = key_item(n=2, g=NOW + 60)
        assert isinstance(ad.diagnose_key(in_grace, facts(serial=1), NOW, None), ad.KeyWindow)
        over = key_item(n=2, g=NOW - 1)
        assert ad.diagnose_key(over, facts(serial=1), NOW, None) is logic.ROTATED_OUT
        two_back = key_item(n=3, g=NOW + 60)
        assert ad.diagnose_key(two_back, facts(serial=1), NOW, None) is logic.ROTATED_OUT

    def test_delegated(self) -> None:
        child = facts(key_id="key_c", parent_key_id="key_a")
        d = ad.diagnose_key(key_item(b=5, u=5), child, NOW, None)
        assert isinstance(d, logic.Decision) and d.code == "insufficient_quota"
        assert ad.diagnose_key(key_item(ps="suspended"), child, NOW, None) is logic.PARENT_INACTIVE

    def test_stale_windows(self) -> None:
        d = ad.diagnose_key(key_item(w=1, c=99), facts(), NOW, 3)
        assert d == ad.KeyWindow(True, gate.minute_window(NOW))
        old_month = diagnose_shard(shard(mo="2000-01", rq=99, ra=5, rl=5))
        assert isinstance(old_month, ad.Rollover)
        assert ":ra" in old_month.request["ExpressionAttributeValues"]  # back to its share

    def test_windows_never_move_back(self) -> None:
        ahead = key_item(w=gate.minute_window(NOW) + 1, c=0)
        assert ad.diagnose_key(ahead, facts(), NOW, 3) == ad.KeyWindow(
            False, gate.minute_window(NOW) + 1
        )
        assert diagnose_shard(shard(mo="2999-01")) == ad.Retry("2999-01")

    def test_a_changed_plan_limit_is_refreshed_not_refused(self) -> None:
        assert diagnose_shard(shard(rpm=10), rpm=5) == ad.NewRpm(10)

    def test_a_spent_shard_borrows_when_the_tenant_has_others(self) -> None:
        assert diagnose_shard(shard(ra=5, rq=5, ns=4)) == ad.Borrow("rq", 1)
        assert diagnose_shard(shard(ta=5, tk=5, ns=4)) == ad.Borrow("tk", 1)


class TestShares:
    @given(limit=st.integers(0, 10**9), shards=st.integers(1, 64))
    def test_shares_add_up_to_the_limit(self, limit: int, shards: int) -> None:
        parts = [gate.share(limit, shards, i) for i in range(shards)]
        assert sum(parts) == limit and max(parts) - min(parts) <= 1

    def test_donor_is_the_shard_with_most_left_and_gives_half(self) -> None:
        month = gate.month_window(NOW)
        shards = [shard(ix=0, ra=10, rq=10), shard(ix=1, ra=10, rq=2), shard(ix=2, ra=10, rq=6),
                  shard(ix=3, ra=10, rq=0, mo="2000-01")]  # fmt: skip
        found = ad.pick_donor(shards, "rq", 1, month, exclude=0)
        assert found is not None and found[0]["ix"] == 1 and found[1] == 4
        assert ad.pick_donor(shards[:1], "rq", 1, month, exclude=0) is None


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
