"""The detector's pure logic (no network): floors, warm-up, sustained spikes and surges,
incidents, holds, fan-out, stuffing, state round trips, and properties with hypothesis."""

from __future__ import annotations

import random
from collections.abc import Iterable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.detector import backtest, records
from functions.detector.logic import (
    DEFAULT_POLICY,
    FANOUT,
    MINUTE_MS,
    REQUEST_SPIKE,
    STUFFING,
    STUFFING_SOURCE,
    TOKEN_SPIKE,
    Engine,
    Finding,
    KeyState,
    Params,
    Policy,
    Refusal,
    SourceState,
    Usage,
    normalise_source,
)

T0 = 1_772_409_600_000  # 2026-03-02T00:00:00Z
KEY = "key_AAAAAAAAAAAAAAAA"
P = Params()


def at(minute: float, second: float = 0) -> int:
    return int(T0 + minute * MINUTE_MS + second * 1000)


def use(minute: float, tokens: int = 100, ip: str = "10.0.0.1", key: str = KEY) -> Usage:
    return Usage(ts=at(minute), key_id=key, tenant_id="acme", tokens=tokens, source=ip)


def feed(
    engine: Engine,
    state: KeyState,
    events: Iterable[Usage],
    policy: Policy = DEFAULT_POLICY,
    source: SourceState | None = None,
) -> list[Finding]:
    return [f for ev in events if (f := engine.usage(state, ev, policy, source)) is not None]


def quiet_history(engine: Engine, state: KeyState, days: int = 2, tokens: int = 60) -> None:
    """A steady, quiet key: one request every 10 minutes for ``days``."""
    assert not feed(engine, state, (use(m, tokens) for m in range(0, days * 1440, 10)))


# -- floors ---------------------------------------------------------------------------
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    minutes=st.lists(
        st.tuples(
            st.integers(0, 3000),  # gap to the previous minute used
            st.integers(1, P.request_floor_rpm),  # requests in the minute
            st.integers(0, 5000),  # tokens asked for (capped below the floor)
        ),
        min_size=1,
        max_size=60,
    ),
    factor=st.floats(1.1, 50),
    floor=st.integers(1, 20_000),
)
def test_nothing_below_the_floors_ever_fires(
    minutes: list[tuple[int, int, int]], factor: float, floor: int
) -> None:
    engine, state, policy = Engine(), KeyState(), Policy("suspend", factor, floor)
    minute = 0
    for gap, requests, tokens in minutes:
        minute += gap
        per_request = min(tokens, floor) // requests  # the minute's total stays <= floor
        events = [use(minute, per_request) for _ in range(requests)]
        assert not feed(engine, state, events, policy)


@settings(max_examples=40, deadline=None)
@given(new_sources_per_hour=st.lists(st.integers(0, P.fanout_floor // 2), min_size=1, max_size=30))
def test_fewer_new_sources_than_the_floor_never_fan_out(new_sources_per_hour: list[int]) -> None:
    engine, state = Engine(), KeyState()
    quiet_history(engine, state, days=2)
    n = 0
    for hour, count in enumerate(new_sources_per_hour):
        for i in range(count):  # at most floor/2 an hour: never more than floor in 60 min
            n += 1
            assert not feed(engine, state, [use(2 * 1440 + hour * 60 + i, 10, f"192.0.2.{n}")])


@settings(max_examples=40, deadline=None)
@given(
    bursts=st.lists(
        st.tuples(st.integers(5, 120), st.integers(0, P.stuffing_distinct - 1)),
        min_size=1,
        max_size=20,
    )
)
def test_fewer_refused_keys_than_the_threshold_never_flag_a_source(
    bursts: list[tuple[int, int]],
) -> None:
    engine, src = Engine(), SourceState()
    minute = 0
    for gap, distinct in bursts:
        minute += gap  # >= 5 minutes apart: each burst is its own window
        for i in range(distinct):
            ev = Refusal(ts=at(minute, i), source="203.0.113.1", fp=f"{minute:06d}{i:02d}")
            assert engine.refusal(src, ev) is None


# -- volume ---------------------------------------------------------------------------
def test_a_new_key_surging_past_five_times_its_threshold_is_suspended_at_once() -> None:
    engine, state = Engine(), KeyState()
    found = feed(engine, state, [use(0, 3000) for _ in range(20)])  # 60k tokens, threshold 10k
    (f,) = found
    assert (f.signal, f.action) == (TOKEN_SPIKE, "suspend")
    assert f.observed > P.surge * f.threshold and f.baseline == 1000  # the warm-up prior


def test_a_learning_key_sustained_spike_is_only_an_alert() -> None:
    engine, state = Engine(), KeyState()
    events = [use(m + s / 60, 1000) for m in (0, 1) for s in range(0, 60, 4)]  # 15k/min
    (f,) = feed(engine, state, events)
    assert (f.signal, f.action) == (TOKEN_SPIKE, "alert")


def test_one_hot_minute_is_noise_two_in_a_row_is_a_spike() -> None:
    engine, state = Engine(), KeyState()
    quiet_history(engine, state)
    start = 2 * 1440 + 5
    hot = 160  # 25 requests: 4,000 tokens/min, over the 1,000 floor, under a 5x surge
    assert not feed(engine, state, [use(start + i / 30, hot) for i in range(25)])
    assert not feed(engine, state, [use(start + 3 + i / 30, 10) for i in range(2)])
    assert not feed(engine, state, [use(start + 10 + i / 30, hot) for i in range(25)])
    found = feed(engine, state, [use(start + 11 + i / 30, hot) for i in range(25)])
    (f,) = found
    assert (f.signal, f.action) == (TOKEN_SPIKE, "suspend")
    assert f.window_start == at(start + 10)  # the evidence covers both minutes
    assert f.observed < P.surge * f.threshold


def test_a_quiet_key_surging_is_suspended_at_once() -> None:
    engine, state = Engine(), KeyState()
    quiet_history(engine, state)
    (f,) = feed(engine, state, [use(2 * 1440 + i / 30, 2500) for i in range(25)])
    assert f.observed > P.surge * 10 * 1000 and f.action == "suspend"  # 50x the floor


def test_a_request_flood_of_cheap_calls_is_a_request_spike() -> None:
    engine, state = Engine(), KeyState()
    quiet_history(engine, state)
    start = 2 * 1440
    events = [use(start + m + i / 200, 0) for m in (0, 1) for i in range(200)]
    (f,) = feed(engine, state, events)
    assert f.signal == REQUEST_SPIKE and f.unit == "requests/min"


def test_off_policy_keeps_no_state_and_alert_policy_alerts() -> None:
    engine = Engine()
    off = KeyState()
    assert not feed(engine, off, [use(0, 9000) for _ in range(20)], Policy("off"))
    assert off.minute == -1
    (f,) = feed(engine, KeyState(), [use(0, 9000) for _ in range(20)], Policy("alert"))
    assert f.action == "alert"


def test_a_daily_job_is_learned_by_the_hour_of_day_profile() -> None:
    engine, state = Engine(), KeyState()
    findings = []
    for day in range(5):
        for m in range(0, 1440, 15):
            findings += feed(engine, state, [use(day * 1440 + m, 200)])
        job = day * 1440 + 3 * 60  # 03:00 UTC, 30 minutes at 8k tokens/minute
        findings += feed(
            engine, state, (use(job + m + s / 10, 800) for m in range(30) for s in range(10))
        )
    suspended = [f for f in findings if f.action == "suspend"]
    assert not suspended, suspended


# -- incidents and holds ----------------------------------------------------------------
def test_one_finding_per_incident_and_a_new_one_after_the_cooldown() -> None:
    engine, state = Engine(), KeyState()
    surge = [use(m + i / 40, 3000) for m in range(10) for i in range(20)]
    (first,) = feed(engine, state, surge)
    later = [use(10 + P.cooldown_min + 5 + i / 40, 3000) for i in range(20)]
    (again,) = feed(engine, state, later)
    assert again.incident_id != first.incident_id and again.action == "suspend"


def test_a_held_key_is_not_suspended_and_the_accepted_level_becomes_its_baseline() -> None:
    engine, state = Engine(), KeyState()
    (f,) = feed(engine, state, [use(0 + i / 40, 3000) for i in range(20)])
    engine.hold(state, until_minute=(f.ts // MINUTE_MS) + 720)
    assert state.bt >= 60_000 * 0.99
    assert not feed(
        engine, state, [use(m + i / 40, 3000) for m in range(200, 210) for i in range(20)]
    )


def test_an_alert_incident_escalates_once_to_a_suspension() -> None:
    engine, state = Engine(), KeyState()
    now = T0 // MINUTE_MS
    flag = {"onset": now, "until": now + 100, "strong": False, "distinct": 0, "refusals": 70}
    src = SourceState(flag={**flag, "id": "x"})
    (weak,) = feed(engine, state, [use(1, 10, "198.51.100.9")], source=src)
    assert (weak.signal, weak.action) == (STUFFING_SOURCE, "alert")
    (strong,) = feed(engine, state, [use(2 + i / 40, 3000) for i in range(20)])
    assert strong.action == "suspend" and strong.incident_id == weak.incident_id
    assert not feed(engine, state, [use(3 + i / 40, 3000) for i in range(20)])


# -- fan-out and stuffing ---------------------------------------------------------------
def test_a_key_resold_to_many_new_sources_fans_out() -> None:
    engine, state = Engine(), KeyState()
    quiet_history(engine, state)
    found: list[Finding] = []
    for n in range(30):
        found += feed(engine, state, [use(2 * 1440 + 4 * n, 50, f"198.18.{n}.1")])
    (f,) = found
    assert f.signal == FANOUT and f.observed == P.fanout_floor + 1


def test_ipv6_sources_count_per_64() -> None:
    assert normalise_source("2001:db8:1:2::1") == normalise_source("2001:db8:1:2:ffff::9")
    assert normalise_source("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert normalise_source("::ffff:192.0.2.1") == "192.0.2.1"
    assert normalise_source(None) == "-" and normalise_source("x" * 200) == "x" * 64


def test_stuffing_flags_a_source_then_upgrades_weak_evidence_once() -> None:
    engine, src = Engine(), SourceState()
    found = [engine.refusal(src, Refusal(ts=at(0, i), source="s")) for i in range(60)]
    (weak,) = [f for f in found if f is not None]
    assert weak.signal == STUFFING and weak.unit == "refusals/5 min"
    found = [
        engine.refusal(src, Refusal(ts=at(1, i), source="s", fp=f"{i:08x}")) for i in range(40)
    ]
    (strong,) = [f for f in found if f is not None]
    assert strong.unit == "refused keys/5 min" and src.flag and src.flag["strong"]


def test_a_stale_key_retried_is_not_stuffing() -> None:
    engine, src = Engine(), SourceState()
    for i in range(50):
        assert engine.refusal(src, Refusal(ts=at(0, i), source="s", fp="deadbeef")) is None


# -- state and parsing --------------------------------------------------------------------
def test_state_survives_a_round_trip_at_any_batch_boundary() -> None:
    from bench.traces.generate import generate

    _, abuse, _ = generate(seed=3, days=2, n_keys=8)
    rng = random.Random(5)
    events = [e for e in (records.trace_event(x) for x in abuse) if isinstance(e, Usage)]
    engine = Engine()
    straight: dict[str, KeyState] = {}
    batched: dict[str, KeyState] = {}
    a: list[tuple[str, str, int]] = []
    b: list[tuple[str, str, int]] = []
    for ev in events:
        if (f := engine.usage(straight.setdefault(ev.key_id, KeyState()), ev)) is not None:
            a.append((f.subject, f.signal, f.ts))
        if (f := engine.usage(batched.setdefault(ev.key_id, KeyState()), ev)) is not None:
            b.append((f.subject, f.signal, f.ts))
        if rng.random() < 0.01:  # a batch ends: every state is stored and read back
            batched = {k: KeyState.from_dict(v.to_dict()) for k, v in batched.items()}
    assert a == b and a


def test_access_log_lines_become_refusals() -> None:
    line = {"status": "401", "ip": "203.0.113.5", "requestTime": "02/Mar/2026:14:23:17 +0000"}
    r = records.access_log_refusal(line, fallback_ts=1)
    assert r is not None and r.ts == at(14 * 60 + 23, 17) and r.fp is None
    denied = {"status": "403", "ip": "203.0.113.5", "keyId": "key_x", "errorType": "ACCESS_DENIED"}
    r = records.access_log_refusal(denied, fallback_ts=7)
    assert r is not None and r.ts == 7 and r.fp == records.fingerprint("key_x")
    assert records.access_log_refusal({"status": "200"}, 1) is None
    assert records.access_log_refusal({"status": "403", "errorType": "WAF_FILTERED"}, 1) is None


@pytest.mark.parametrize(
    "item",
    [{}, {"key_id": "k"}, {"key_id": "", "ts": 1}, {"key_id": "k", "ts": "x"}, {"ts": 5}],
)
def test_malformed_usage_items_are_none(item: dict[str, object]) -> None:
    assert records.usage(item) is None


def test_policy_of_stored_values() -> None:
    assert Policy.of(None, None, None) == Policy()
    assert Policy.of("bogus", 0.5, -3) == Policy("suspend", 10.0, 0)
    assert Policy.of("alert", 3, 500) == Policy("alert", 3.0, 500)


def test_backtest_blocks_a_suspended_keys_later_events() -> None:
    events = [
        {"ts": at(0, i / 10), "key_id": KEY, "prompt_tokens": 3000, "completion_tokens": 0}
        for i in range(40)
    ]
    report = backtest.run([*events, {"nonsense": True}])
    assert report.skipped == 1 and list(report.first_suspensions()) == [KEY]
    assert report.blocked_events[KEY] == 40 - 17  # suspended at the 17th (51k > 50k)


# -- finding 2 of issue 11: a shared address is never enough to suspend a key ---------------
def _flag_with(engine: Engine, refusals: list[Refusal]) -> SourceState:
    src = SourceState()
    for ev in refusals:
        engine.refusal(src, ev)
    assert src.flag is not None and src.flag["strong"]
    return src


def test_finding_2_another_tenants_dead_keys_flag_the_address_but_alert_on_its_keys() -> None:
    engine = Engine()
    src = _flag_with(
        engine,
        [Refusal(ts=at(0, i), source="s", code="key_revoked", fp=f"{i:08x}", tenant="alpha")
         for i in range(20)],
    )  # fmt: skip
    beta = Usage(ts=at(1), key_id="key_beta", tenant_id="beta", tokens=10, source="s")
    (f,) = feed(engine, KeyState(), [beta], source=src)
    assert (f.signal, f.action) == (STUFFING_SOURCE, "alert")
    alpha = Usage(ts=at(1), key_id="key_alpha", tenant_id="alpha", tokens=10, source="s")
    (g,) = feed(engine, KeyState(), [alpha], source=src)  # the evidence is about alpha
    assert (g.signal, g.action) == (STUFFING_SOURCE, "suspend")


def test_finding_2_a_key_established_at_the_address_only_gets_an_alert() -> None:
    engine, state = Engine(), KeyState()
    assert not feed(engine, state, [use(m, 10, "s") for m in range(0, 600, 10)])
    unknown = [Refusal(ts=at(700, i), source="s", fp=f"{i:08x}") for i in range(25)]
    src = _flag_with(engine, unknown)
    found = feed(engine, state, [use(701 + i / 10, 10, "s") for i in range(10)], source=src)
    assert [(f.signal, f.action) for f in found] == [(STUFFING_SOURCE, "alert")]  # once


def test_finding_2_only_refusals_that_look_like_stuffing_count() -> None:
    engine, src = Engine(), SourceState()
    mistakes = (
        "insufficient_scope", "scope_not_in_plan", "wrong_environment", "unknown_route",
        "key_suspended", "tenant_inactive", "parent_key_inactive", "ACCESS_DENIED",
    )  # fmt: skip
    for i in range(200):
        ev = Refusal(ts=at(0, i / 4), source="s", code=mistakes[i % len(mistakes)],
                     fp=f"{i:08x}", tenant="alpha")  # fmt: skip
        assert engine.refusal(src, ev) is None
    assert src.flag is None and not src.refused
    for code in ("key_revoked", "key_expired", "invalid_api_key"):
        assert Refusal(ts=0, source="s", code=code).stuffing


def test_finding_2_access_log_lines_carry_the_refused_keys_tenant_and_decision() -> None:
    line = {"status": "403", "ip": "203.0.113.5", "keyId": "key_x", "tenantId": "alpha",
            "errorType": "ACCESS_DENIED", "decision": "insufficient_scope"}  # fmt: skip
    r = records.access_log_refusal(line, fallback_ts=1)
    assert r is not None and r.tenant == "alpha" and not r.stuffing
    r = records.access_log_refusal({**line, "decision": "key_revoked"}, fallback_ts=1)
    assert r is not None and r.stuffing
    r = records.access_log_refusal({"status": "401", "ip": "x", "decision": "-"}, 1)
    assert r is not None and r.stuffing and r.tenant == "" and r.fp is None


def test_finding_2_a_flag_and_a_key_state_survive_a_round_trip() -> None:
    engine = Engine()
    src = _flag_with(
        engine,
        [Refusal(ts=at(0, i), source="s", code="key_revoked", fp=f"{i:08x}",
                 tenant="alpha" if i % 2 else "") for i in range(30)],
    )  # fmt: skip
    again = SourceState.from_dict(src.to_dict())
    assert again.flag == src.flag and again.owners == src.owners
    assert src.flag is not None and src.flag["tenants"] == {"alpha": 15}
    assert src.flag["unknown"] == 15
    state = KeyState()
    feed(engine, state, [use(1, 10, "s")])
    assert KeyState.from_dict(state.to_dict()).since == state.since == {"s": T0 // MINUTE_MS + 1}
