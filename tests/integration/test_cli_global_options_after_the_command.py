"""Finding 6 of issue 11: ``--json``, ``--local``, ``--stack NAME`` and ``--verbose`` work
after the command too (0.1.0: "No such option"), and still before it."""

from __future__ import annotations

import pytest

from tests.integration.conftest import Run
from tollgate.local.aws import MotoServer


def test_json_after_the_command(cli: Run) -> None:
    cli("plans", "create", "pro", json=False).ok()
    assert cli("plans", "list", "--json", json=False).ok().json[0]["name"] == "pro"
    assert cli("plans", "show", "pro", "--json", json=False).ok().json["name"] == "pro"
    assert cli("--json", "plans", "show", "pro", json=False).ok().json["name"] == "pro"


def test_local_and_verbose_after_the_command(
    cli: Run, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOLLGATE_AWS_PORT", str(moto_server.port))
    cli("plans", "create", "pro", "--local", "--verbose").ok()
    assert cli("tenants", "create", "acme", "--plan", "pro", "--local").ok().json["plan"] == "pro"


def test_stack_after_the_command(bad_input: Run) -> None:
    assert "unknown stack 'nope'" in bad_input("plans", "list", "--stack", "nope").err
    assert "unknown stack 'nope'" in bad_input("plans", "list", "--stack=nope").err
