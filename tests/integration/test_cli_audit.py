"""``tollgate audit``: rows, filters, append-only records."""

from __future__ import annotations

from typing import Any

import pytest

from functions.common.models import AuditRecord
from tests.integration.conftest import Run

pytestmark = pytest.mark.usefixtures("dynamodb")

AUDIT_FIELDS = {"at", "action", "key_id", "tenant_id", "actor", "reason"}


def test_rows_are_in_order_with_every_field(cli: Run, key: dict[str, Any]) -> None:
    cli("keys", "rotate", key["key_id"]).ok()
    cli("keys", "revoke", key["key_id"], "--reason", "rotated out").ok()
    rows = cli("audit").ok().json
    assert [r["action"] for r in rows] == [
        "plan.created", "tenant.created", "key.created", "key.rotated", "key.revoked",
    ]  # fmt: skip
    for row in rows:
        assert set(row) >= AUDIT_FIELDS
        assert row["actor"] == "test:operator"
    assert [r["at"] for r in rows] == sorted(r["at"] for r in rows)
    assert rows[-1]["reason"] == "rotated out"
    assert rows[-1]["key_id"] == key["key_id"] and rows[-1]["tenant_id"] == "acme"


def test_filters(cli: Run, key: dict[str, Any]) -> None:
    cli("tenants", "create", "other", "--plan", "starter").ok()
    other = cli("keys", "create", "--tenant", "other").ok().json
    by_key = cli("audit", "--key", key["key_id"]).ok().json
    assert {r["key_id"] for r in by_key} == {key["key_id"]}
    by_tenant = cli("audit", "--tenant", "other").ok().json
    assert [r["action"] for r in by_tenant] == ["tenant.created", "key.created"]
    assert by_tenant[1]["key_id"] == other["key_id"]
    assert cli("audit", "--key", key["key_id"], "--tenant", "other").ok().json == []
    both = cli("audit", "--key", key["key_id"], "--tenant", "acme").ok().json
    assert both == by_key


def test_human_audit(cli: Run, key: dict[str, Any]) -> None:
    out = cli("audit", "--tenant", "acme", json=False).ok().out
    assert "key.created" in out and key["key_id"] in out


def test_records_are_append_only(key: dict[str, Any]) -> None:
    from pynamodb.exceptions import PutError

    record = next(iter(AuditRecord.query("acme")))
    record.reason = "rewritten"
    with pytest.raises(PutError):
        record.save(condition=AuditRecord.event_id.does_not_exist())


@pytest.mark.usefixtures("tenant")
@pytest.mark.parametrize(
    "args",
    [
        ["audit", "--key", "key_0000000000000000"],
        ["audit", "--key", "nonsense"],
        ["audit", "--tenant", "nope"],
        ["audit", "--tenant", "bad id"],
    ],
)
def test_bad_input(bad_input: Run, args: list[str]) -> None:
    bad_input(*args)
