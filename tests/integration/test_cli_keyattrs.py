"""``tollgate keys create|delegate --allow-cidr --tag`` and ``keys set-limit`` (issue 15):
JSON and human output, exit 2 with one line for bad input (nothing written), the audit
trail, and the same commands in a real ``python -m tollgate --local`` process."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.gate import items as it
from tests import gate_support
from tests.integration.conftest import Run
from tests.integration.test_cli_json_one_document import fresh_env, run_process
from tollgate.local.aws import MotoServer


def test_create_with_networks_and_tags(cli: Run, tenant: str) -> None:
    key = cli("keys", "create", "--tenant", tenant, "--allow-cidr", "10.0.0.0/8,2001:DB8::/32",
              "--allow-cidr", "192.0.2.7", "--tag", "team=search",
              "--tag", "cc=42").ok().json  # fmt: skip
    assert key["allow_cidrs"] == ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]
    assert key["tags"] == {"cc": "42", "team": "search"}
    assert key["requests_per_minute"] is None
    shown = cli("keys", "show", key["key_id"]).ok().json
    assert shown["allow_cidrs"] == key["allow_cidrs"] and shown["tags"] == key["tags"]
    (row,) = [r for r in cli("keys", "list", "--tenant", tenant).ok().json
              if r["key_id"] == key["key_id"]]  # fmt: skip
    assert row["tags"] == key["tags"]
    human = cli("keys", "show", key["key_id"], json=False).ok().out
    assert "team=search" in human and "10.0.0.0/8" in human


def test_delegate_inherits_narrows_and_overrides(cli: Run, tenant: str) -> None:
    parent = cli("keys", "create", "--tenant", tenant, "--allow-cidr", "10.0.0.0/8",
                 "--tag", "team=a", "--tag", "env=prod").ok().json  # fmt: skip
    child = cli("keys", "delegate", parent["key_id"], "--principal", "agent").ok().json
    assert child["allow_cidrs"] == ["10.0.0.0/8"] and child["tags"] == parent["tags"]
    narrow = cli("keys", "delegate", parent["key_id"], "--principal", "agent2",
                 "--allow-cidr", "10.7.0.0/16", "--tag", "team=b").ok().json  # fmt: skip
    assert narrow["allow_cidrs"] == ["10.7.0.0/16"]
    assert narrow["tags"] == {"env": "prod", "team": "b"}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--tag", "team"), "expected KEY=VALUE"),
        (("--tag", "=x"), "key before '=' is empty"),
        (("--tag", "team="), "value after '=' is empty"),
        (("--tag", "team=a b"), "use only"),
        (("--tag", "k" * 40 + "=v"), "longer than 32"),
        (("--tag", "a=1", "--tag", "a=2"), "given twice"),
        (tuple(x for i in range(9) for x in ("--tag", f"k{i}=v")), "at most 8"),
        (("--allow-cidr", "10.0.0.1/8"), "host bits set"),
        (("--allow-cidr", "10.0.0.0/40"), "not a CIDR"),
        (("--allow-cidr", "nowhere"), "not a CIDR"),
        (("--allow-cidr", ",".join(f"10.{i}.0.0/16" for i in range(17))), "at most 16"),
    ],
)
def test_bad_create_input_exits_2(
    bad_input: Any, tenant: str, args: tuple[str, ...], says: str
) -> None:
    assert says in bad_input("keys", "create", "--tenant", tenant, *args).err


def test_delegation_cannot_widen_the_networks(cli: Run, bad_input: Any, tenant: str) -> None:
    parent = cli("keys", "create", "--tenant", tenant, "--allow-cidr", "10.0.0.0/8").ok().json
    err = bad_input("keys", "delegate", parent["key_id"], "--principal", "a",
                    "--allow-cidr", "10.0.0.0/7").err  # fmt: skip
    assert "not within the parent" in err


def test_set_limit_shows_audits_and_clears(cli: Run, key: dict[str, Any]) -> None:
    kid = key["key_id"]
    shown = cli("keys", "set-limit", kid, "--requests-per-minute", "500").ok().json
    assert shown["requests_per_minute"] == 500
    assert gate_support.view("acme")["gate"][kid][it.KEY_RPM] == 500
    assert cli("keys", "show", kid).ok().json["requests_per_minute"] == 500
    cli("keys", "set-limit", kid, "--requests-per-minute", "0").ok()
    cleared = cli("keys", "set-limit", kid, "--requests-per-minute", "none").ok().json
    assert cleared["requests_per_minute"] is None
    assert it.KEY_RPM not in gate_support.view("acme")["gate"][kid]
    rows = [r for r in cli("audit", "--key", kid).ok().json if r["action"] == "key.limit_set"]
    assert [(r["details"]["requests_per_minute"], r["details"]["previous"]) for r in rows] == [
        (500, None), (0, 500), (None, 0)
    ]  # fmt: skip
    human = cli("keys", "set-limit", kid, "--requests-per-minute", "7", json=False).ok().out
    assert "requests_per_minute" in human and "7" in human


@pytest.mark.parametrize("value", ["-1", "1.5", "lots", ""])
def test_set_limit_bad_values_exit_2(bad_input: Any, key: dict[str, Any], value: str) -> None:
    bad_input("keys", "set-limit", key["key_id"], "--requests-per-minute", value)


def test_set_limit_needs_a_known_live_key(cli: Run, bad_input: Any, key: dict[str, Any]) -> None:
    bad_input("keys", "set-limit", "key_0000000000000000", "--requests-per-minute", "5")
    bad_input("keys", "set-limit", "nope", "--requests-per-minute", "5")
    cli("keys", "revoke", key["key_id"], "--reason", "gone").ok()
    refused = cli("keys", "set-limit", key["key_id"], "--requests-per-minute", "5")
    assert refused.code != 0 and "revoked" in refused.err and refused.out == ""


def test_the_commands_in_a_real_local_process(
    cli: Run, tenant: str, moto_server: MotoServer
) -> None:
    env = fresh_env(moto_server)

    def run(*argv: str) -> Any:
        result = run_process(["--local", "--json", *argv], env)
        assert result.code == 0, result.err
        return json.loads(result.out)

    made = run("keys", "create", "--tenant", tenant, "--allow-cidr", "2001:db8::/32",
               "--tag", "team=x")  # fmt: skip
    assert made["allow_cidrs"] == ["2001:db8::/32"] and made["tags"] == {"team": "x"}
    child = run("keys", "delegate", made["key_id"], "--principal", "a", "--tag", "job=1")
    assert child["tags"] == {"job": "1", "team": "x"}
    assert run("keys", "set-limit", made["key_id"], "--requests-per-minute", "3")[
        "requests_per_minute"
    ] == 3  # fmt: skip
    assert run("keys", "show", made["key_id"])["requests_per_minute"] == 3
    assert run("usage", "--tenant", tenant, "--by", "tag:team") == []
    bad = run_process(["--local", "--json", "keys", "create", "--tenant", tenant,
                       "--tag", "oops"], env)  # fmt: skip
    assert bad.code == 2 and bad.out == "" and bad.err.count("\n") == 1
    assert "expected KEY=VALUE" in bad.err
