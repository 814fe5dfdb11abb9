"""``tollgate keys``: create, delegate, list, show, rotate, revoke, reinstate."""

from __future__ import annotations

import calendar
import time
from typing import Any

import pytest

from functions.common import keyformat
from functions.common.models import Key, Secret, Tenant
from functions.common.routes import SCOPES
from functions.gate import items as gate
from functions.keys import KeyService
from tests import gate_support
from tests.integration.conftest import Run

pytestmark = pytest.mark.usefixtures("dynamodb")

ROW_FIELDS = {
    "key_id", "tenant_id", "environment", "principal", "scopes", "status", "status_reason",
    "parent_key_id", "created_at", "expires_at", "token_budget",
}  # fmt: skip
ISSUED_FIELDS = {
    "key_id",
    "secret",
    "tenant_id",
    "environment",
    "principal",
    "scopes",
    "expires_at",
}


def entry(tenant_id: str, key_id: str) -> dict[str, Any]:
    """The key's gate item, without its address fields."""
    item = dict(gate_support.view(tenant_id)["gate"][key_id])
    return {k: v for k, v in item.items()
            if k not in ("pk", "sk", "_id", "_parent", "p", "tn", "x")}  # fmt: skip


def new_entry(token_budget: int | None = None) -> dict[str, Any]:
    """A new key's gate item (functions/gate/admin.py new_key_item)."""
    fresh: dict[str, Any] = {"s": "active", "w": 0, "c": 0, "n": 1, "g": 0}
    if token_budget is not None:
        fresh.update(b=token_budget, u=0)
    return fresh


def accepts(e: dict[str, Any], serial: int, now: float) -> bool:
    """The gate's rule for a secret's serial (gate.py; what the authorizer enforces)."""
    if e[gate.STATUS] != "active":
        return False
    return serial == e[gate.SERIAL] or (serial == e[gate.SERIAL] - 1 and e[gate.GRACE] > now)


def secret_item(secret: str) -> Secret:
    return Secret.get(keyformat.hash_secret(secret), consistent_read=True)


# ------------------------------------------------------------------ create


def test_create_shape_and_what_is_stored(key: dict[str, Any]) -> None:
    assert set(key) >= ISSUED_FIELDS
    parsed = keyformat.parse(key["secret"])
    assert parsed is not None and parsed.environment == "live" == key["environment"]
    assert key["tenant_id"] == "acme"
    assert key["principal"] == "default"
    assert key["scopes"] == sorted(SCOPES)
    assert key["status"] == "active"
    assert key["parent_key_id"] is None
    expires = calendar.timegm(time.strptime(key["expires_at"], "%Y-%m-%dT%H:%M:%SZ"))
    assert abs(expires - (time.time() + 30 * 86400)) < 120

    facts = secret_item(key["secret"])
    assert facts.key_id == key["key_id"] and facts.serial == 1
    assert facts.tenant_id == "acme" and facts.environment == "live"
    assert sorted(facts.scopes) == key["scopes"]
    assert facts.ttl is None
    record = Key.get(key["key_id"])
    assert record.status == "active" and record.secret_serial == 1
    assert key["secret"] not in str(record.attribute_values)
    assert parsed.secret_hash not in str(record.attribute_values)
    assert entry("acme", key["key_id"]) == new_entry()


def test_create_test_key_with_options(cli: Run, tenant: str) -> None:
    key = cli(
        "keys", "create", "--tenant", tenant, "--env", "test", "--principal", "svc:billing",
        "--scopes", "inference:invoke", "--expires-in", "1h",
    ).ok().json  # fmt: skip
    assert key["secret"].startswith("tg_test_")
    assert key["environment"] == "test"
    assert key["principal"] == "svc:billing"
    assert key["scopes"] == ["inference:invoke"]


def test_create_without_expiry_never_expires(cli: Run, tenant: str) -> None:
    key = cli("keys", "create", "--tenant", tenant).ok().json
    assert key["expires_at"] is None
    assert secret_item(key["secret"]).expires_at is None


def test_create_is_audited(cli: Run, key: dict[str, Any]) -> None:
    rows = cli("audit", "--key", key["key_id"]).ok().json
    assert [r["action"] for r in rows] == ["key.created"]
    assert rows[0]["tenant_id"] == "acme" and rows[0]["actor"] == "test:operator"


def test_human_create_shows_the_secret_once(cli: Run, tenant: str) -> None:
    out = cli("keys", "create", "--tenant", tenant, json=False).ok().out
    secrets = [w for w in out.split() if w.startswith("tg_live_")]
    assert len(secrets) == 1 and keyformat.parse(secrets[0]) is not None
    assert "shown once" in out


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["keys", "create", "--tenant", "nope"], "unknown tenant"),
        (["keys", "create", "--tenant", "acme", "--env", "prod"], "environment"),
        (["keys", "create", "--tenant", "acme", "--scopes", "admin:all"], "unknown scope"),
        (["keys", "create", "--tenant", "acme", "--scopes", "tools:execute"], "not allowed"),
        (["keys", "create", "--tenant", "acme", "--expires-in", "soon"], "duration"),
        (["keys", "create", "--tenant", "acme", "--expires-in", "0"], "duration"),
        (["keys", "create", "--tenant", "acme", "--expires-in", "-1d"], "duration"),
        (["keys", "create", "--tenant", "acme", "--principal", "a b"], "principal"),
        (["keys", "create", "--tenant", "acme", "--principal", ""], "principal"),
        (["keys", "create"], "--tenant"),
        (["keys", "list", "--tenant", "nope"], "unknown tenant"),
        (["keys", "list"], "--tenant"),
        (["keys", "show", "key_0000000000000000"], "unknown key"),
        (["keys", "show", "not-a-key-id"], "bad key id"),
    ],
)
def test_bad_input(cli: Run, bad_input: Run, args: list[str], says: str) -> None:
    cli("plans", "create", "narrow", "--scopes", "inference:invoke").ok()
    cli("tenants", "create", "acme", "--plan", "narrow").ok()
    assert says in bad_input(*args).err


def test_inactive_tenant_gets_no_key(cli: Run, tenant: str, bad_input: Run) -> None:
    Tenant(tenant).update(actions=[Tenant.status.set("suspended")])
    assert "not active" in bad_input("keys", "create", "--tenant", tenant).err


def test_a_secret_passed_as_key_id_is_not_echoed(bad_input: Run, key: dict[str, Any]) -> None:
    err = bad_input("keys", "show", key["secret"]).err
    assert key["secret"] not in err and "--secret" in err


# ------------------------------------------------------------- list / show


def test_list_and_show_rows(cli: Run, tenant: str, key: dict[str, Any]) -> None:
    other = cli("keys", "create", "--tenant", tenant, "--env", "test").ok().json
    rows = cli("keys", "list", "--tenant", tenant).ok().json
    assert [r["key_id"] for r in rows] == [key["key_id"], other["key_id"]]
    for row in rows:
        assert set(row) >= ROW_FIELDS
        assert "secret" not in row and "secret_hash" not in row
    shown = cli("keys", "show", key["key_id"]).ok().json
    assert shown == rows[0]
    assert key["secret"] not in cli("keys", "list", "--tenant", tenant, json=False).out
    assert key["key_id"] in cli("keys", "show", key["key_id"], json=False).ok().out


def test_expired_status_is_derived(cli: Run, key: dict[str, Any]) -> None:
    Key(key["key_id"]).update(actions=[Key.expires_at.set(int(time.time()) - 1)])
    assert cli("keys", "show", key["key_id"]).ok().json["status"] == "expired"


# ------------------------------------------------------------------ rotate


def test_rotate_keeps_the_old_secret_valid_for_the_grace_only(
    cli: Run, key: dict[str, Any]
) -> None:
    before = time.time()
    rotated = cli("keys", "rotate", key["key_id"]).ok().json
    assert set(rotated) >= ISSUED_FIELDS
    assert rotated["key_id"] == key["key_id"] and rotated["serial"] == 2
    assert rotated["secret"] != key["secret"] and keyformat.parse(rotated["secret"])

    e = entry("acme", key["key_id"])
    assert e[gate.SERIAL] == 2
    assert before + 3600 - 2 <= e[gate.GRACE] <= time.time() + 3600
    now = time.time()
    assert accepts(e, 2, now)  # the new secret
    assert accepts(e, 1, now)  # the old one, within the grace
    assert not accepts(e, 1, e[gate.GRACE])  # ... and not after it
    assert not accepts(e, 1, e[gate.GRACE] + 1)

    old, new = secret_item(key["secret"]), secret_item(rotated["secret"])
    assert (old.serial, new.serial) == (1, 2)
    assert old.ttl == e[gate.GRACE] + 30 * 86400
    assert new.ttl is None and new.key_id == key["key_id"]
    record = Key.get(key["key_id"])
    assert record.secret_serial == 2 and record.rotated_at
    rows = cli("audit", "--key", key["key_id"]).ok().json
    assert [r["action"] for r in rows] == ["key.created", "key.rotated"]
    assert rows[1]["details"]["serial"] == 2


def test_rotate_with_no_grace_cuts_the_old_secret_at_once(cli: Run, key: dict[str, Any]) -> None:
    cli("keys", "rotate", key["key_id"], "--grace", "0").ok()
    e = entry("acme", key["key_id"])
    assert e[gate.GRACE] == 0
    assert not accepts(e, 1, time.time())
    assert accepts(e, 2, time.time())


def test_rotating_twice_retires_the_first_secret(cli: Run, key: dict[str, Any]) -> None:
    cli("keys", "rotate", key["key_id"], "--grace", "15m").ok()
    third = cli("keys", "rotate", key["key_id"], "--grace", "15m").ok().json
    e = entry("acme", key["key_id"])
    assert e[gate.SERIAL] == 3 and third["serial"] == 3
    assert not accepts(e, 1, time.time())
    assert accepts(e, 2, time.time())
    assert 880 < e[gate.GRACE] - time.time() <= 900


def test_human_rotate(cli: Run, key: dict[str, Any]) -> None:
    out = cli("keys", "rotate", key["key_id"], json=False).ok().out
    assert "Rotated" in out and out.count("tg_live_") == 1


def test_rotate_refusals(cli: Run, key: dict[str, Any], bad_input: Run) -> None:
    bad_input("keys", "rotate", key["key_id"], "--grace", "later")
    bad_input("keys", "rotate", "key_0000000000000000")
    KeyService().suspend(key["key_id"], reason="spike", actor="detector")
    assert "only an active key" in bad_input("keys", "rotate", key["key_id"]).err
    cli("keys", "revoke", key["key_id"], "--reason", "done").ok()
    assert "revoked" in bad_input("keys", "rotate", key["key_id"]).err


def test_an_expired_key_does_not_rotate(cli: Run, key: dict[str, Any], bad_input: Run) -> None:
    Key(key["key_id"]).update(actions=[Key.expires_at.set(int(time.time()) - 1)])
    assert "expired" in bad_input("keys", "rotate", key["key_id"]).err


# ---------------------------------------------------------------- delegate


def test_delegate_subset_budget_and_gate_entry(cli: Run, key: dict[str, Any]) -> None:
    child = cli(
        "keys", "delegate", key["key_id"], "--principal", "agent:planner",
        "--scopes", "inference:invoke", "--token-budget", "5000", "--expires-in", "1h",
    ).ok().json  # fmt: skip
    assert set(child) >= ISSUED_FIELDS
    assert child["parent_key_id"] == key["key_id"]
    assert child["tenant_id"] == "acme" and child["environment"] == "live"
    assert child["principal"] == "agent:planner"
    assert child["scopes"] == ["inference:invoke"]
    assert child["token_budget"] == 5000
    assert child["expiry_clamped"] is False
    assert child["secret"].startswith("tg_live_")
    assert entry("acme", child["key_id"]) == new_entry(token_budget=5000)
    assert gate_support.parent_of("acme", child["key_id"]) == key["key_id"]
    facts = secret_item(child["secret"])
    assert facts.parent_key_id == key["key_id"]
    rows = cli("audit", "--key", child["key_id"]).ok().json
    assert [r["action"] for r in rows] == ["key.delegated"]
    assert rows[0]["details"]["parent_key_id"] == key["key_id"]


def test_delegate_defaults_to_the_parents_scopes_and_expiry(cli: Run, key: dict[str, Any]) -> None:
    child = cli("keys", "delegate", key["key_id"], "--principal", "agent").ok().json
    assert child["scopes"] == key["scopes"]
    assert child["expires_at"] == key["expires_at"]
    assert child["token_budget"] is None
    assert gate.BUDGET not in entry("acme", child["key_id"])


def test_delegate_expiry_is_clamped_to_the_parent(cli: Run, key: dict[str, Any]) -> None:
    result = cli("keys", "delegate", key["key_id"], "--principal", "a", "--expires-in", "90d")
    child = result.ok().json
    assert child["expires_at"] == key["expires_at"] and child["expiry_clamped"] is True
    assert secret_item(child["secret"]).expires_at == Key.get(key["key_id"]).expires_at
    human = cli("keys", "delegate", key["key_id"], "--principal", "b", "--expires-in", "90d",
                json=False)  # fmt: skip
    assert "clamped" in human.ok().err and human.out.count("tg_live_") == 1


def test_delegate_from_a_key_without_expiry(cli: Run, tenant: str) -> None:
    parent = cli("keys", "create", "--tenant", tenant).ok().json
    child = cli("keys", "delegate", parent["key_id"], "--principal", "a", "--expires-in", "1h")
    assert child.ok().json["expires_at"] is not None


def test_delegation_refusals(cli: Run, key: dict[str, Any], bad_input: Run) -> None:
    narrow = cli(
        "keys", "delegate", key["key_id"], "--principal", "a", "--scopes", "inference:invoke"
    ).ok().json  # fmt: skip
    parent = key["key_id"]
    err = bad_input("keys", "delegate", parent, "--principal", "b", "--scopes", "admin:all").err
    assert "unknown scope" in err
    # one level only: a delegated key cannot delegate
    assert "one level" in bad_input("keys", "delegate", narrow["key_id"], "--principal", "c").err
    bad_input("keys", "delegate", parent, "--principal", "d", "--token-budget", "0")
    bad_input("keys", "delegate", parent, "--principal", "d", "--token-budget", "-5")
    bad_input("keys", "delegate", parent, "--principal", "d", "--expires-in", "1y")
    bad_input("keys", "delegate", parent)  # --principal is required
    bad_input("keys", "delegate", "key_0000000000000000", "--principal", "d")


def test_delegation_cannot_widen_scopes(cli: Run, tenant: str, bad_input: Run) -> None:
    parent = cli("keys", "create", "--tenant", tenant, "--scopes", "inference:invoke").ok().json
    err = bad_input(
        "keys", "delegate", parent["key_id"], "--principal", "a",
        "--scopes", "inference:invoke,tools:execute",
    ).err  # fmt: skip
    assert "widen" in err


def test_no_delegation_from_an_inactive_parent(
    cli: Run, key: dict[str, Any], bad_input: Run
) -> None:
    KeyService().suspend(key["key_id"], reason="spike", actor="detector")
    assert "suspended" in bad_input("keys", "delegate", key["key_id"], "--principal", "a").err
    cli("keys", "revoke", key["key_id"], "--reason", "r").ok()
    assert "revoked" in bad_input("keys", "delegate", key["key_id"], "--principal", "a").err


# ------------------------------------------------------------------ revoke


def test_revoke_cascades_to_delegated_keys(cli: Run, key: dict[str, Any]) -> None:
    c1 = cli("keys", "delegate", key["key_id"], "--principal", "a1").ok().json
    c2 = cli("keys", "delegate", key["key_id"], "--principal", "a2").ok().json
    other = cli("keys", "create", "--tenant", "acme").ok().json
    result = cli("keys", "revoke", key["key_id"], "--reason", "offboarding").ok().json
    assert result["revoked"][0] == key["key_id"]
    assert sorted(result["revoked"]) == sorted([key["key_id"], c1["key_id"], c2["key_id"]])
    for kid in result["revoked"]:
        assert entry("acme", kid)[gate.STATUS] == "revoked"
        row = cli("keys", "show", kid).ok().json
        assert (row["status"], row["status_reason"]) == ("revoked", "offboarding")
    assert entry("acme", other["key_id"])[gate.STATUS] == "active"
    rows = [r for r in cli("audit", "--tenant", "acme").ok().json if r["action"] == "key.revoked"]
    assert sorted(r["key_id"] for r in rows) == sorted(result["revoked"])
    assert {r["reason"] for r in rows} == {"offboarding"}
    child_rows = [r for r in rows if r["key_id"] != key["key_id"]]
    assert all(r["details"]["cascade_from"] == key["key_id"] for r in child_rows)


def test_revoking_a_child_leaves_the_parent(cli: Run, key: dict[str, Any]) -> None:
    child = cli("keys", "delegate", key["key_id"], "--principal", "a").ok().json
    assert cli("keys", "revoke", child["key_id"], "--reason", "r").ok().json == {
        "revoked": [child["key_id"]]
    }
    assert entry("acme", key["key_id"])[gate.STATUS] == "active"


def test_revoke_is_idempotent(cli: Run, key: dict[str, Any]) -> None:
    cli("keys", "revoke", key["key_id"], "--reason", "first").ok()
    again = cli("keys", "revoke", key["key_id"], "--reason", "second").ok().json
    assert again == {"revoked": [key["key_id"]]}
    assert cli("keys", "show", key["key_id"]).ok().json["status_reason"] == "first"
    rows = cli("audit", "--key", key["key_id"]).ok().json
    assert rows[-1]["details"]["already_revoked"] is True


def test_revoke_by_leaked_secret(cli: Run, key: dict[str, Any]) -> None:
    child = cli("keys", "delegate", key["key_id"], "--principal", "a").ok().json
    result = cli("keys", "revoke", "--secret", key["secret"], "--reason", "leaked").ok()
    assert sorted(result.json["revoked"]) == sorted([key["key_id"], child["key_id"]])
    assert key["secret"] not in result.out + result.err
    rows = cli("audit", "--key", key["key_id"]).ok().json
    assert rows[-1]["details"]["via"] == "secret"


def test_revoke_by_an_old_rotated_secret_and_from_stdin(cli: Run, key: dict[str, Any]) -> None:
    cli("keys", "rotate", key["key_id"]).ok()
    result = cli("keys", "revoke", "--secret", "-", "--reason", "leak", input=key["secret"] + "\n")
    assert result.ok().json == {"revoked": [key["key_id"]]}


def test_revoke_a_child_by_its_secret(cli: Run, key: dict[str, Any]) -> None:
    child = cli("keys", "delegate", key["key_id"], "--principal", "a").ok().json
    result = cli("keys", "revoke", "--secret", child["secret"], "--reason", "leak").ok().json
    assert result == {"revoked": [child["key_id"]]}


def test_revoke_a_tenant(cli: Run, key: dict[str, Any]) -> None:
    child = cli("keys", "delegate", key["key_id"], "--principal", "a").ok().json
    test_key = cli("keys", "create", "--tenant", "acme", "--env", "test").ok().json
    cli("tenants", "create", "other", "--plan", "starter").ok()
    bystander = cli("keys", "create", "--tenant", "other").ok().json
    result = cli("keys", "revoke", "--tenant", "acme", "--reason", "contract ended").ok().json
    ids = {key["key_id"], child["key_id"], test_key["key_id"]}
    assert set(result["revoked"]) == ids and len(result["revoked"]) == 3
    assert all(entry("acme", k)[gate.STATUS] == "revoked" for k in ids)
    assert entry("other", bystander["key_id"])[gate.STATUS] == "active"
    assert cli("keys", "revoke", "--tenant", "other", "--reason", "x").ok().json["revoked"] == [
        bystander["key_id"]
    ]


def test_revoke_a_tenant_without_keys(cli: Run, tenant: str) -> None:
    assert cli("keys", "revoke", "--tenant", tenant, "--reason", "x").ok().json == {"revoked": []}


def test_human_revoke(cli: Run, key: dict[str, Any]) -> None:
    out = cli("keys", "revoke", key["key_id"], "--reason", "r", json=False).ok().out
    assert "Revoked 1 key(s)" in out and key["key_id"] in out


def test_revoke_refusals(cli: Run, key: dict[str, Any], bad_input: Run) -> None:
    kid = key["key_id"]
    assert "--reason" in bad_input("keys", "revoke", kid).err
    assert "reason" in bad_input("keys", "revoke", kid, "--reason", "  ").err
    bad_input("keys", "revoke", "--reason", "x")
    bad_input("keys", "revoke", kid, "--tenant", "acme", "--reason", "x")
    bad_input("keys", "revoke", "key_0000000000000000", "--reason", "x")
    bad_input("keys", "revoke", "--tenant", "nope", "--reason", "x")
    mangled = key["secret"][:-1] + ("A" if key["secret"][-1] != "A" else "B")
    err = bad_input("keys", "revoke", "--secret", mangled, "--reason", "x").err
    assert "well-formed" in err and mangled not in err and key["secret"][:20] not in err
    unknown = keyformat.generate("live")
    err = bad_input("keys", "revoke", "--secret", unknown, "--reason", "x").err
    assert "no key has this secret" in err and unknown not in err
    err = bad_input("keys", "revoke", key["secret"], "--reason", "x").err
    assert key["secret"] not in err


# ------------------------------------------------------- suspend / reinstate


def test_suspend_then_reinstate(cli: Run, key: dict[str, Any]) -> None:
    service = KeyService()
    evidence = {"tokens_per_minute": 90000, "baseline": 800}
    assert service.suspend(key["key_id"], reason="spike", actor="detector", evidence=evidence)
    assert not service.suspend(key["key_id"], reason="spike", actor="detector")  # replay: no-op
    assert entry("acme", key["key_id"])[gate.STATUS] == "suspended"
    assert cli("keys", "show", key["key_id"]).ok().json["status"] == "suspended"
    row = cli("keys", "reinstate", key["key_id"], "--reason", "false positive").ok().json
    assert (row["status"], row["status_reason"]) == ("active", "false positive")
    assert entry("acme", key["key_id"])[gate.STATUS] == "active"
    rows = cli("audit", "--key", key["key_id"]).ok().json
    assert [r["action"] for r in rows] == ["key.created", "key.suspended", "key.reinstated"]
    assert rows[1]["details"]["evidence"] == evidence and rows[1]["actor"] == "detector"


def test_a_suspension_interrupted_after_the_gate_is_finished_by_the_retry(
    cli: Run, key: dict[str, Any]
) -> None:
    """Found by the soak: an attempt that suspended the gate item and then failed (DynamoDB)
    left the Key record active, the children running and no audit record, and its retry
    returned "already suspended". The retry now finishes it."""
    child = cli("keys", "delegate", key["key_id"], "--principal", "agent").ok().json
    gate_support.set_key("acme", key["key_id"], s="suspended")  # attempt 1 got this far
    service = KeyService()
    assert service.suspend(key["key_id"], reason="spike", actor="detector")
    assert cli("keys", "show", key["key_id"]).ok().json["status"] == "suspended"
    assert entry("acme", child["key_id"]).get("ps") == "suspended"
    actions = [r["action"] for r in cli("audit", "--key", key["key_id"]).ok().json]
    assert actions == ["key.created", "key.suspended"]
    assert not service.suspend(key["key_id"], reason="spike", actor="detector")  # now done


def test_human_reinstate(cli: Run, key: dict[str, Any]) -> None:
    KeyService().suspend(key["key_id"], reason="spike", actor="detector")
    out = cli("keys", "reinstate", key["key_id"], "--reason", "ok", json=False).ok().out
    assert "Reinstated" in out


def test_reinstate_refusals(cli: Run, key: dict[str, Any], bad_input: Run) -> None:
    assert "not suspended" in bad_input("keys", "reinstate", key["key_id"], "--reason", "x").err
    KeyService().suspend(key["key_id"], reason="spike", actor="detector")
    bad_input("keys", "reinstate", key["key_id"])  # --reason is required
    cli("keys", "revoke", key["key_id"], "--reason", "r").ok()
    assert "final" in bad_input("keys", "reinstate", key["key_id"], "--reason", "x").err
    bad_input("keys", "reinstate", "key_0000000000000000", "--reason", "x")


def test_actor_option_and_env(
    cli: Run, key: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    cli("keys", "revoke", key["key_id"], "--reason", "r", "--actor", "oncall:alice").ok()
    assert cli("audit", "--key", key["key_id"]).ok().json[-1]["actor"] == "oncall:alice"
    monkeypatch.delenv("TOLLGATE_ACTOR")
    other = cli("keys", "create", "--tenant", "acme").ok().json
    assert cli("audit", "--key", other["key_id"]).ok().json[0]["actor"].startswith("cli:")


def test_delegation_default_scopes_follow_a_narrowed_plan(cli: Run, key: dict[str, Any]) -> None:
    cli("plans", "create", "narrow", "--scopes", "inference:invoke").ok()
    cli("tenants", "set-plan", "acme", "narrow").ok()
    child = cli("keys", "delegate", key["key_id"], "--principal", "a").ok().json
    assert child["scopes"] == ["inference:invoke"]


def test_revoke_a_tenant_reaches_every_key_and_child(cli: Run, tenant: str) -> None:
    parent = cli("keys", "create", "--tenant", tenant).ok().json
    ids = {parent["key_id"]}
    ids |= {cli("keys", "create", "--tenant", tenant).ok().json["key_id"] for _ in range(2)}
    ids.add(cli("keys", "delegate", parent["key_id"], "--principal", "a").ok().json["key_id"])
    result = cli("keys", "revoke", "--tenant", tenant, "--reason", "x").ok().json
    assert set(result["revoked"]) == ids
    assert all(entry(tenant, k)[gate.STATUS] == "revoked" for k in ids)


def test_seed_is_idempotent_for_plan_and_tenant(cli: Run) -> None:
    service = KeyService()
    first = service.seed(plan_options={"requests_per_minute": 60, "price_per_1k_prompt": "0.001"})
    assert [k["environment"] for k in first] == ["live", "test"]
    assert all(keyformat.parse(k["secret"]) for k in first)
    second = service.seed(plan_options={"requests_per_minute": 1})
    assert {k["key_id"] for k in first}.isdisjoint(k["key_id"] for k in second)
    assert cli("plans", "show", "starter").ok().json["requests_per_minute"] == 60
    assert len(cli("keys", "list", "--tenant", "demo").ok().json) == 4
