"""Names a caller controls never reach an invoice (issue 14, item 6): whatever model or tool
name a request carries, its usage event names a model the plan lists, a built-in tool or
``unknown``, and the statement built by the real aggregator from those events has only such
lines. Also the aggregator's own fence (functions/usage/logic.py ``billable_model``) on
events written by anyone: a made-up name is counted as ``unknown``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.api.tools import TOOLS
from functions.pricing.catalogue import UNKNOWN
from functions.usage.logic import UsageFact, billable_model
from tests.fuzz.support import count, fuzz
from tests.integration.api_events import (
    call,
    chat,
    event,
    events_table,
    fresh_api,
    make_key,
    make_plan,
    make_tenant,
    who_for,
)

LISTED = ("tollgate-echo",)
KNOWN = {*LISTED, UNKNOWN, "-", *(f"tool:{t}" for t in TOOLS)}

names = st.one_of(
    st.text(min_size=1, max_size=80),
    st.sampled_from(
        [
            "gpt-4o",
            "upstream:gpt-4o",
            "bedrock:x",
            "anthropic.claude-3",
            "tool:x",
            "calculator",
            "tollgate-echo ",
            "TOLLGATE-ECHO",
            "unknown",
            "-",
        ]
    ),
    st.from_regex(r"(upstream:|bedrock:|us\.amazon\.)[a-z0-9.:-]{1,40}", fullmatch=True),
)


@pytest.fixture
def world(dynamodb: Any) -> Iterator[Any]:
    fresh_api()
    make_tenant("acme", make_plan(models=list(LISTED)))
    yield who_for("acme", make_key("acme")), dynamodb
    fresh_api()


@fuzz(40)
@given(model=names, tool=names)
def test_a_callers_names_never_become_invoice_lines(world: Any, model: str, tool: str) -> None:
    count("invoice names")
    who, db = world
    before = len(events_table(db))
    chat(who, "hi", model=model)
    name = "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "_" for c in tool[:40])
    call(event("POST", f"/v1/tools/{name}/invoke", who, body={}))
    events = events_table(db)
    assert len(events) == before + 2  # one event per request, refused or not
    for item in events:
        assert item["model"] in KNOWN, item["model"]


@fuzz(200)
@given(model=names)
def test_the_aggregator_folds_any_name_nobody_knows(model: str) -> None:
    count("invoice names (aggregator)")
    item = {"request_id": "r", "tenant_id": "t", "key_id": "k", "environment": "live",
            "ts": 1, "model": model}  # fmt: skip
    folded = UsageFact.from_item(item).model
    assert folded in (model, UNKNOWN)
    assert billable_model(folded) == folded  # idempotent: a folded name stays folded
    if folded == model and model not in ("-", UNKNOWN):
        assert model.startswith("tool:") or ":" in model or "." in model or model in LISTED
