"""Finding 6 of issue 11: ``tollgate exposure`` showed environment and parent as ``-`` for
a key's delegated keys; it shows their real values (``--json`` and the table)."""

from __future__ import annotations

from typing import Any

from functions.keys import KeyService
from tests.integration.conftest import Run


def test_delegated_keys_show_environment_and_parent(cli: Run, dynamodb: Any) -> None:
    svc = KeyService()
    svc.create_plan("starter", actor="test")
    svc.create_tenant("acme", plan="starter", actor="test")
    for env in ("live", "test"):
        parent = svc.create_key("acme", environment=env, principal="svc", actor="test")
        child = svc.delegate_key(parent["key_id"], principal="agent-7", actor="test")

        [row] = cli("exposure", parent["key_id"]).ok().json["children"]
        assert row["key_id"] == child["key_id"]
        assert (row["environment"], row["parent_key_id"]) == (env, parent["key_id"])
        assert row["principal"] == "agent-7" and row["status"] == "active"

        human = cli("exposure", parent["key_id"], json=False).ok().out
        delegated = human.split("Delegated keys", 1)[1].split("Source addresses", 1)[0]
        [line] = [x for x in delegated.splitlines() if child["key_id"] in x]
        cells = [c.strip() for c in line.split("│")]
        assert cells[1] == env and cells[6] == parent["key_id"], line
