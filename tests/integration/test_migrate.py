"""0.1.0 -> the gate table: the migration on data the 0.1.0 code wrote.

``tests/fixtures/v010_tables.json`` is every table of a small deployment written by 0.1.0's
own KeyService, authorizer and API (``tests/fixtures/make_v010_fixture.py`` says how): an
active key, a rotated key in its grace, a suspended and a revoked key, a delegated key with a
part-spent token budget, a test key, a second tenant, and the counters of real requests.
After ``migrate`` the new authorizer must give every key the verdict 0.1.0 gave it, every
counter must be carried over (never under), and running it again must change nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
)

from functions.authorizer import handler
from functions.common import ddb
from functions.common.config import TableNames
from functions.common.routes import route_for
from functions.gate import items as it
from functions.gate.migrate import migrate
from tests import gate_support
from tests.authorizer_events import request_event

FIXTURE = json.loads((Path(__file__).parent.parent / "fixtures" / "v010_tables.json").read_text())
CHAT = route_for("POST", "/v1/chat/completions")
assert CHAT


def secret(name: str) -> str:
    return str(FIXTURE["secrets"][name]["reversed"])[::-1]


def key_id(name: str) -> str:
    return str(FIXTURE["secrets"][name]["key_id"])


@pytest.fixture
def v010(dynamodb: Any) -> Iterator[Any]:
    """The 0.1.0 tables loaded as they were written."""
    names = TableNames()
    for kind, items in FIXTURE["tables"].items():
        for item in items:
            dynamodb.put_item(TableName=getattr(names, kind), Item=item)
    ddb.reset_client()
    handler._store = None
    yield dynamodb
    handler._store = None


def run(dry_run: bool = False) -> dict[str, Any]:
    names = TableNames()
    return migrate(
        tenants_table=names.tenants, plans_table=names.plans, keys_table=names.keys,
        gate_table=names.gate, dry_run=dry_run,
    ).as_dict()  # fmt: skip


# The fixture's clock: it was written at ``written_at``, so "now" in these checks is a minute
# later, whatever today's date (a rotated key's 2 h grace and the month the counters belong
# to are fixed in the fixture; the wall clock would make the verdicts depend on the day).
WRITTEN_AT = float(FIXTURE["written_at"])


def verdict(s: str, now: float | None = None) -> str:
    event = APIGatewayAuthorizerRequestEvent(request_event(CHAT, {"x-api-key": s}))
    decision, _ = handler.decide(event, WRITTEN_AT + 60 if now is None else now)
    return "allow" if decision.admitted else decision.code


def test_before_migrating_requests_fail_closed_as_unavailable(v010: Any) -> None:
    from functions.gate.store import GatePending

    with pytest.raises(GatePending):
        verdict(secret("active"))


def test_dry_run_writes_nothing(v010: Any) -> None:
    report = run(dry_run=True)
    assert report["dry_run"] and sorted(report["migrated"]) == ["acme", "beta"]
    assert report["keys_written"] == 7
    assert v010.scan(TableName=TableNames().gate)["Items"] == []


def test_every_key_keeps_its_verdict_and_every_counter_is_carried(v010: Any) -> None:
    old_tenant = next(i for i in FIXTURE["tables"]["tenants"] if i["tenant_id"]["S"] == "acme")
    report = run()
    assert sorted(report["migrated"]) == ["acme", "beta"] and report["keys_written"] == 7

    assert verdict(secret("active")) == "allow"
    assert verdict(secret("rotated_new")) == "allow"
    assert verdict(secret("rotated_old")) == "allow"  # still in its 2 h grace
    assert verdict(secret("rotated_old"), now=WRITTEN_AT + 3 * 3600) == "invalid_api_key"
    assert verdict(secret("suspended")) == "key_suspended"
    assert verdict(secret("revoked")) == "key_revoked"
    assert verdict(secret("child")) == "allow"
    assert verdict(secret("test")) == "allow"
    assert verdict(secret("other")) == "allow"

    view = gate_support.view("acme")
    # this month's counters carried (plus the requests just made), never under
    assert view["mtok"] == int(old_tenant["mtok"]["N"])
    assert view["mreq"] >= int(old_tenant["mreq"]["N"])
    child = view["gate"][key_id("child")]
    old_entry = old_tenant["gate"]["M"][key_id("child")]["M"]
    assert child["b"] == int(old_entry["b"]["N"]) and child["u"] == int(old_entry["u"]["N"])
    assert child["p"] == key_id("active")  # in its parent's partition
    raw = v010.get_item(TableName=TableNames().tenants, Key={"tenant_id": {"S": "acme"}})["Item"]
    assert not {"gate", "mo", "mreq", "mtok"} & set(raw)  # the big map is gone


def test_running_it_again_changes_nothing(v010: Any) -> None:
    run()
    before = sorted(map(json.dumps, v010.scan(TableName=TableNames().gate)["Items"]), key=str)
    again = run()
    assert again["migrated"] == [] and sorted(again["already_migrated"]) == ["acme", "beta"]
    after = sorted(map(json.dumps, v010.scan(TableName=TableNames().gate)["Items"]), key=str)
    assert before == after


def test_an_interrupted_run_resumes(v010: Any) -> None:
    """A run that stopped after some key items: the next run completes it, overwriting
    nothing the new code wrote meanwhile."""
    from functions.gate import admin

    names = TableNames()
    tenant = next(i for i in FIXTURE["tables"]["tenants"] if i["tenant_id"]["S"] == "acme")
    first = sorted(tenant["gate"]["M"])[0]
    entry = {
        k: int(v["N"]) if "N" in v else v["S"] for k, v in tenant["gate"]["M"][first]["M"].items()
    }
    admin.new_key_item(names.gate, tenant_id="acme", key_id=first,
                       parent_key_id=entry.get("p"), token_budget=None)  # fmt: skip
    gate_support.set_key("acme", first, c=77)  # as if the new code had counted since
    report = run()
    assert report["keys_present"] == 1 and report["keys_written"] == 6
    assert gate_support.view("acme")["gate"][first][it.COUNT] == 77


def test_the_cli_migrates_with_dry_run_first(v010: Any, cli: Any) -> None:
    dry = cli("migrate", "--dry-run").ok().json
    assert dry["dry_run"] is True and dry["keys_written"] == 7
    assert v010.scan(TableName=TableNames().gate)["Items"] == []
    done = cli("migrate").ok().json
    assert sorted(done["migrated"]) == ["acme", "beta"]
    assert cli("migrate").ok().json["migrated"] == []  # idempotent
    assert verdict(secret("active")) == "allow"
    human = cli("migrate", json=False).ok().out
    assert "already migrated" in human
