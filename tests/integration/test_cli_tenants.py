"""``tollgate tenants``: create, list, show, set-plan, and every bad input."""

from __future__ import annotations

import pytest

from functions.common.models import Tenant
from tests import gate_support
from tests.integration.conftest import Run

pytestmark = pytest.mark.usefixtures("dynamodb")


@pytest.fixture
def plans(cli: Run) -> None:
    cli(
        "plans", "create", "starter", "--requests-per-minute", "60",
        "--tokens-per-month", "1000000", "--scopes", "inference:invoke",
    ).ok()  # fmt: skip
    cli("plans", "create", "pro", "--requests-per-month", "500000").ok()


@pytest.mark.usefixtures("plans")
def test_create_copies_the_plan_limits(cli: Run) -> None:
    tenant = cli("tenants", "create", "acme", "--plan", "starter").ok().json
    assert tenant["tenant_id"] == "acme"
    assert tenant["plan"] == "starter"
    assert tenant["status"] == "active"
    assert tenant["requests_per_minute"] == 60
    assert tenant["requests_per_month"] is None
    assert tenant["tokens_per_month"] == 1000000
    assert tenant["scopes"] == ["inference:invoke"]
    assert tenant["keys"] == 0
    item = Tenant.get("acme")
    assert (item.lim_rpm, item.lim_rmo, item.lim_tmo) == (60, None, 1000000)
    assert item.plan_scopes == ["inference:invoke"]
    shards = gate_support.view("acme")["shards"]  # the gate enforces its own copies
    assert [(s["rpm"], s.get("rl"), s["tl"], s["sc"]) for s in shards] == [
        (60, None, 1000000, ["inference:invoke"])
    ]


@pytest.mark.usefixtures("plans")
def test_list_show(cli: Run) -> None:
    cli("tenants", "create", "zeta", "--plan", "pro").ok()
    cli("tenants", "create", "acme", "--plan", "starter").ok()
    assert [t["tenant_id"] for t in cli("tenants", "list").ok().json] == ["acme", "zeta"]
    assert cli("tenants", "show", "zeta").ok().json["plan"] == "pro"
    assert "zeta" in cli("tenants", "list", json=False).ok().out
    assert "pro" in cli("tenants", "show", "zeta", json=False).ok().out


@pytest.mark.usefixtures("plans")
def test_set_plan_recopies_limits_and_is_audited(cli: Run, dynamodb: object) -> None:
    cli("tenants", "create", "acme", "--plan", "starter").ok()
    moved = cli("tenants", "set-plan", "acme", "pro").ok().json
    assert moved["plan"] == "pro"
    assert moved["requests_per_minute"] is None
    assert moved["requests_per_month"] == 500000
    assert moved["tokens_per_month"] is None
    item = Tenant.get("acme")
    # Unlimited means absent (the authorizer tests attribute_not_exists), never NULL.
    raw = dynamodb.get_item(  # type: ignore[attr-defined]
        TableName=Tenant.Meta.table_name, Key={"tenant_id": {"S": "acme"}}
    )["Item"]
    assert "lim_rpm" not in raw and "lim_tmo" not in raw
    assert item.lim_rmo == 500000
    assert len(item.plan_scopes) == 3
    rows = cli("audit", "--tenant", "acme").ok().json
    assert [r["action"] for r in rows] == ["tenant.created", "tenant.plan_changed"]
    assert rows[1]["details"] == {"from": "starter", "to": "pro"}


@pytest.mark.usefixtures("plans")
def test_duplicate_is_refused(cli: Run, bad_input: Run) -> None:
    cli("tenants", "create", "acme", "--plan", "starter").ok()
    assert "already exists" in bad_input("tenants", "create", "acme", "--plan", "pro").err
    assert Tenant.get("acme").plan == "starter"


@pytest.mark.usefixtures("plans")
@pytest.mark.parametrize(
    "args",
    [
        ["tenants", "create", "acme", "--plan", "nope"],
        ["tenants", "create", "acme"],
        ["tenants", "create", "bad id", "--plan", "starter"],
        ["tenants", "create", "x" * 65, "--plan", "starter"],
        ["tenants", "create", "a.b", "--plan", "starter"],
        ["tenants", "show", "nope"],
        ["tenants", "set-plan", "nope", "pro"],
        ["tenants", "set-plan", "known", "nope"],
        ["tenants", "set-plan", "known"],
    ],
)
def test_bad_input(cli: Run, bad_input: Run, args: list[str]) -> None:
    cli("tenants", "create", "known", "--plan", "starter").ok()
    result = bad_input(*args)
    if "nope" in args:
        assert "unknown" in result.err
