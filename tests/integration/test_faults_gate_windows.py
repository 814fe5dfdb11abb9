"""A request that reaches the gate late -- its clock read in one minute, its update applied
after another request already opened the next minute (a retry after a throttled or failed
attempt, a slow network, a busy container) -- must not move the counter window back.

Found by the soak (``two admissions counted at the same (key, minute, position)``): a late
request's update saw a window other than its own, diagnosed it as stale, and its rollover
(``w <> :minute``, then ``w = :minute, c = 1``) set the window back to the earlier minute
and restarted the count; the next request of the later minute rolled it forward again and
counted from 1 once more, so the later minute admitted more than its limit."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
)

from functions.authorizer import handler as authorizer
from functions.common import ddb
from functions.common.routes import route_for
from functions.keys import KeyService
from tests import gate_support
from tests.authorizer_events import request_event

MINUTE = 29_930_536  # a UTC minute (epoch seconds // 60)
T = MINUTE * 60.0
ROUTE = route_for("GET", "/v1/models")
LIMIT = 2


@pytest.fixture
def secret(dynamodb: Any) -> str:
    ddb.reset_client()
    authorizer._store = None
    svc = KeyService()
    svc.create_plan("tight", requests_per_minute=LIMIT, actor="test")
    svc.create_tenant("acme", plan="tight", actor="test")
    return str(svc.create_key("acme", actor="test")["secret"])


def verdict(secret: str, now: float) -> str:
    assert ROUTE is not None
    event = APIGatewayAuthorizerRequestEvent(
        request_event(ROUTE, {"Authorization": f"Bearer {secret}"})
    )
    decision, _ = authorizer.decide(event, now)
    return "allow" if decision.admitted else decision.code


def gate_entry(dynamodb: Any) -> dict[str, Any]:
    (entry,) = gate_support.view("acme")["gate"].values()
    return dict(entry)


def test_a_late_request_never_reopens_a_minute_past_its_limit(dynamodb: Any, secret: str) -> None:
    assert verdict(secret, T + 60.2) == "allow"  # minute MINUTE + 1 opens: c = 1
    late = verdict(secret, T + 59.9)  # read in minute MINUTE, applied after the one above
    later = [verdict(secret, T + 61.0) for _ in range(3)]  # minute MINUTE + 1 again
    # Today: the late request sets w back to MINUTE with c = 1, the next one rolls w forward
    # with c = 1 again, and minute MINUTE + 1 admits 3 with a limit of 2.
    assert gate_entry(dynamodb)["w"] == MINUTE + 1, "the window never goes back"
    counted_late = int(late == "allow")  # if admitted, it counts in the open minute
    assert 1 + counted_late + later.count("allow") <= LIMIT, (late, later)


NEW_MONTH = 1_798_761_600.0  # 2027-01-01T00:00:00Z


@pytest.fixture
def monthly(dynamodb: Any) -> str:
    ddb.reset_client()
    authorizer._store = None
    svc = KeyService()
    svc.create_plan("monthly", requests_per_month=LIMIT, actor="test")
    svc.create_tenant("acme", plan="monthly", actor="test")
    return str(svc.create_key("acme", actor="test")["secret"])


def test_a_late_request_never_reopens_a_month_past_its_quota(dynamodb: Any, monthly: str) -> None:
    assert verdict(monthly, NEW_MONTH + 0.2) == "allow"  # January opens: mreq = 1
    late = verdict(monthly, NEW_MONTH - 0.1)  # read in December, applied after
    later = [verdict(monthly, NEW_MONTH + 1.0) for _ in range(3)]
    counted_late = int(late == "allow")
    assert 1 + counted_late + later.count("allow") <= LIMIT, (late, later)
