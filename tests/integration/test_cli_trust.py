"""``tollgate trust create|list|show|delete`` (docs/cli.md): one JSON document each, bad input
refused with exit 2 and nothing written, deletion revokes what the policy issued."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from functions.keys import KeyService
from tests.integration.conftest import Result, Run

ISSUER = "https://token.actions.githubusercontent.com"


def create(cli: Run, *extra: str) -> Result:
    return cli("trust", "create", "--tenant", "acme", "--issuer", ISSUER, "--audience",
               "tollgate", "--subject", "repo:acme/*:ref:refs/heads/main", *extra)  # fmt: skip


def test_create_list_show_delete(cli: Run, tenant: str) -> None:
    made = create(cli, "--scopes", "inference:invoke", "--ttl", "30m", "--claim",
                  "repository_owner=acme", "--principal", "gha:{repository}", "--tag",
                  "team=ml", "--claim-tag", "repo=repository", "--allow-cidr",
                  "203.0.113.0/24,2001:db8::/32", "--token-budget", "5000").ok().json  # fmt: skip
    assert made["policy_id"].startswith("tp_") and made["status"] == "active"
    assert made["ttl_seconds"] == 1800 and made["scopes"] == ["inference:invoke"]
    assert made["claims"] == {"repository_owner": "acme"}
    assert made["tags"] == {"team": "ml"} and made["claim_tags"] == {"repo": "repository"}
    assert made["allow_cidrs"] == ["203.0.113.0/24", "2001:db8::/32"]
    root = KeyService().get_key(made["root_key_id"])
    assert root["principal"] == f"trust:{made['policy_id']}" and "secret" not in made
    assert root["allow_cidrs"] == made["allow_cidrs"] and root["tags"] == {"team": "ml"}
    listed = cli("trust", "list", "--tenant", tenant).ok().json
    assert [p["policy_id"] for p in listed] == [made["policy_id"]]
    assert cli("trust", "show", made["policy_id"]).ok().json == made
    gone = cli("trust", "delete", made["policy_id"], "--reason", "rotated CI").ok().json
    assert gone["status"] == "deleted" and gone["revoked"] == [made["root_key_id"]]
    assert cli("trust", "show", made["policy_id"]).ok().json["status_reason"] == "rotated CI"
    actions = [r["action"] for r in cli("audit", "--tenant", tenant).ok().json]
    assert "trust.created" in actions and "trust.deleted" in actions
    human = cli("trust", "list", "--tenant", tenant, json=False).ok()
    assert made["policy_id"] in human.out


def test_bad_input_is_refused_and_writes_nothing(
    cli: Run, tenant: str, bad_input: Callable[..., Any]
) -> None:
    for extra in (
        ["--ttl", "13h"],
        ["--ttl", "0"],
        ["--scopes", "nope:nope"],
        ["--claim", "no-equals-sign"],
        ["--principal", "{repository!r}"],
        ["--principal", "bad space{sub}"],
        ["--allow-cidr", "300.0.0.0/8"],
        ["--tag", "a=b c"],
        ["--max-uses", "0"],
        ["--exchanges-per-minute", "0"],
        ["--env", "staging"],
    ):
        bad_input("trust", "create", "--tenant", tenant, "--issuer", ISSUER, "--audience",
                  "tollgate", "--subject", "repo:*", *extra)  # fmt: skip
    for issuer in ("http://example.com", "https://x.example/?q=1", "ftp://x", "https://x/"):
        bad_input("trust", "create", "--tenant", tenant, "--issuer", issuer, "--audience",
                  "a", "--subject", "s")  # fmt: skip
    bad_input("trust", "create", "--tenant", "nobody", "--issuer", ISSUER, "--audience", "a",
              "--subject", "s")  # fmt: skip
    bad_input("trust", "show", "tp_0000000000000000")
    bad_input("trust", "show", "not-an-id")
    bad_input("trust", "delete", "tp_0000000000000000", "--reason", "x")
