"""The orphaned-reservation sweep (functions/sweep, functions/gate/reservations.py).

A request whose Api function "dies" after reserving (the provider raises a BaseException that
nothing in the Api catches, as a kill would stop it) leaves its reservation counted and its
marker; the sweep bills it at the upper bound with an estimated usage event, leaves the
counters as they are and deletes the marker; a second sweep changes nothing. A request that
settles leaves no marker.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from functions.api import handler as api
from functions.authorizer import handler as authorizer
from functions.common.config import TableNames
from functions.gate import items as it
from functions.sweep.config import SweepSettings
from functions.sweep.logic import sweep, window
from tests.integration.api_events import (
    Spy,
    chat,
    events_table,
    fresh_api,
    install,
    make_key,
    make_plan,
    make_tenant,
    tenant_item,
    who_for,
)

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

HELLO = "hello world"
LATER = 3600.0  # the sweep runs an hour after the request: every marker is due


class Killed(BaseException):
    """The function's end, as a timeout or an out-of-memory kill would cut it."""


@pytest.fixture(autouse=True)
def tables(dynamodb: Any) -> Iterator[Any]:
    fresh_api()
    authorizer._store = None
    yield dynamodb
    api.reset()
    authorizer._store = None


def _markers(dynamodb: Any) -> list[dict[str, Any]]:
    from functions.common.ddb import item_from_ddb

    items = dynamodb.scan(TableName=TableNames().gate, ConsistentRead=True)["Items"]
    return [item_from_ddb(i) for i in items if it.is_marker(i["pk"]["S"]) and i["sk"]["S"] != "c"]


def _settings() -> SweepSettings:
    return SweepSettings(lookback_minutes=120)


def _killed_request(dynamodb: Any, max_tokens: int = 50) -> tuple[Any, int]:
    import time

    plan = make_plan(price_prompt_micros_per_1k=1000, price_completion_micros_per_1k=2000)
    make_tenant("acme", plan, tokens_per_month=1000)
    who = who_for("acme", make_key("acme"))
    install("echo", Spy(error=Killed()))
    with pytest.raises(Killed):
        chat(who, HELLO, max_tokens=max_tokens)
    return who, int(time.time())


def test_a_killed_request_is_swept_at_its_upper_bound_once(tables: Any) -> None:
    who, now = _killed_request(tables)
    reserved = tenant_item(tables)["mtok"]
    assert reserved > 50  # prompt upper bound + max_tokens, still counted
    assert events_table(tables) == []
    [marker] = _markers(tables)
    assert marker["sk"] and marker[it.MARKER_AMOUNT] == reserved
    assert marker[it.MARKER_TENANT] == "acme" and marker[it.MARKER_KEY] == who.key_id

    assert sweep(_settings(), now=now + 60).settled == 0  # not due yet: the call may still run
    assert len(_markers(tables)) == 1

    report = sweep(_settings(), now=now + LATER)
    assert (report.settled, report.events_written) == (1, 1)
    [ev] = events_table(tables)
    assert ev["request_id"] == marker["sk"]
    assert ev["estimated"] is True and ev["status"] == "error"
    assert ev["error_class"] == "function_timeout"
    assert ev["prompt_tokens"] + ev["completion_tokens"] == reserved
    assert ev["completion_tokens"] == 50
    assert ev["cost_micros"] == (ev["prompt_tokens"] * 1000 + 50 * 2000 + 500) // 1000
    assert ev["tenant_id"] == "acme" and ev["key_id"] == who.key_id
    assert ev["operation"] == "chat.completions" and ev["model"] == "tollgate-echo"
    assert tenant_item(tables)["mtok"] == reserved  # counters unchanged: billed as reserved
    assert _markers(tables) == []

    again = sweep(_settings(), now=now + LATER)
    assert (again.settled, again.events_written) == (0, 0)
    assert events_table(tables) == [ev]
    assert tenant_item(tables)["mtok"] == reserved


def test_a_marker_whose_event_exists_is_only_deleted(tables: Any) -> None:
    """Killed after its event was written (the sweep must not write a second one)."""
    from functions.common.ddb import to_ddb

    _who, now = _killed_request(tables)
    [marker] = _markers(tables)
    tables.put_item(
        TableName=TableNames().usage,
        Item={k: to_ddb(v) for k, v in {"request_id": marker["sk"], "ts": 1,
                                         "prompt_tokens": 3, "completion_tokens": 3}.items()},
    )  # fmt: skip
    report = sweep(_settings(), now=now + LATER)
    assert (report.settled, report.events_written) == (1, 0)
    [ev] = events_table(tables)
    assert ev["prompt_tokens"] == 3 and "estimated" not in ev
    assert _markers(tables) == []


def test_settled_requests_leave_no_marker(tables: Any) -> None:
    make_tenant("acme", make_plan(), tokens_per_month=1000)
    who = who_for("acme", make_key("acme"))
    assert chat(who, HELLO, max_tokens=50).status == 200
    assert chat(who, HELLO, max_tokens=2).status == 200  # exact: no counter settle, still deleted
    assert _markers(tables) == []
    assert tenant_item(tables)["mtok"] == 6 + 5


def test_unlimited_requests_write_no_marker(tables: Any) -> None:
    from tests.integration.api_events import RoundTrips

    make_tenant("acme", make_plan())
    who = who_for("acme", make_key("acme"))
    chat(who, HELLO)
    with RoundTrips() as trips:
        assert chat(who, HELLO).status == 200
    assert "PutItem" in trips.calls and "DeleteItem" not in trips.calls
    assert _markers(tables) == []


def test_the_window_starts_after_the_cursor_and_catches_up_in_steps() -> None:
    settings = SweepSettings(after_s=960, lookback_minutes=60, max_minutes=10)
    now = 100_000 * 60.0
    due = int((now - 960) // 60) - 1
    assert window(None, now, settings) == range(due - 59, due - 49)
    assert window(due - 3, now, settings) == range(due - 2, due + 1)
    assert len(window(due, now, settings)) == 0


def test_the_local_schedule_runs_the_sweep_handler(
    tables: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``make local``'s timer (tollgate/local/pollers.py ``Schedule``) runs the same handler
    as the deployed schedule; here one run, with the request's minute 20 minutes back."""
    from tollgate.local.pollers import Schedule

    real = it.minute_window
    monkeypatch.setattr(it, "minute_window", lambda now=None: real(now) - 20)
    _killed_request(tables)
    monkeypatch.setattr(it, "minute_window", real)
    monkeypatch.setenv("TOLLGATE_SWEEP_LOOKBACK_MIN", "60")
    out = Schedule("ReservationSweep", "functions.sweep.handler.handler", 300).run_once()
    assert (out["settled"], out["events_written"]) == (1, 1)
    [ev] = events_table(tables)
    assert ev["estimated"] is True
    assert _markers(tables) == []
