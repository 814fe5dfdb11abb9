"""Global options (--local, --stack, --json), entry points and exit codes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from functions.common.config import TABLE_KINDS, TableNames
from functions.common.models import Plan, bind_tables, create_tables
from tests.integration.conftest import Run
from tollgate.cli import main
from tollgate.cli.stack import output_key
from tollgate.local.aws import MotoServer


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for group in ("plans", "tenants", "keys", "audit", "--local", "--stack", "--json"):
        assert group in out
    assert main(["keys", "revoke", "--help"]) == 0


def test_usage_errors_exit_2_with_one_line(bad_input: Run) -> None:
    assert "No such command" in bad_input("frobnicate").err
    assert "No such option" in bad_input("plans", "list", "--bogus").err


def test_local_talks_to_the_port_it_is_given(
    cli: Run, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOLLGATE_AWS_PORT", str(moto_server.port))
    cli("--local", "plans", "create", "starter").ok()
    assert cli("--local", "plans", "list").ok().json[0]["name"] == "starter"
    assert os.environ["AWS_ENDPOINT_URL"] == moto_server.endpoint


def test_local_with_a_bad_port_is_bad_input(
    bad_input: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOLLGATE_AWS_PORT", "not-a-port")
    assert "TOLLGATE_AWS_PORT" in bad_input("--local", "plans", "list").err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_module(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tollgate", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )


def test_python_m_tollgate(dynamodb: object, moto_server: MotoServer) -> None:
    env = {"TOLLGATE_AWS_PORT": str(moto_server.port)}
    done = _run_module("--local", "--json", "plans", "create", "starter", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["name"] == "starter"
    done = _run_module("--local", "--json", "plans", "create", "starter", env=env)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().count("\n") == 0 and "already exists" in done.stderr


def test_unreachable_endpoint_exits_1_with_one_line() -> None:
    env = {"TOLLGATE_AWS_PORT": str(_free_port()), "AWS_MAX_ATTEMPTS": "1"}
    done = _run_module("--local", "plans", "list", env=env)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr


def test_other_failures_exit_1_with_one_line(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Plan.Meta, "table_name", "no-such-table")
    result = cli("plans", "list")
    assert result.code == 1 and result.out == ""
    assert result.err.startswith("error: ") and result.err.count("\n") == 1


# ------------------------------------------------------------------ --stack


@pytest.fixture
def stack(dynamodb: Any, moto_server: MotoServer) -> Iterator[TableNames]:
    """A CloudFormation stack in moto whose outputs name a second set of tables."""
    import boto3

    names = TableNames.with_prefix("deployed")
    create_tables(dynamodb, names)
    outputs = {output_key(kind): {"Value": getattr(names, kind)} for kind in TABLE_KINDS}
    # CDK gives outputs declared inside a construct a prefixed, hashed logical id.
    outputs["TablesTablePlansA1B2C3D4"] = outputs.pop("TablePlans")
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": outputs,
    }
    cfn = boto3.client("cloudformation", endpoint_url=moto_server.endpoint)
    cfn.create_stack(StackName="tollgate-prod", TemplateBody=json.dumps(template))
    cfn.create_stack(
        StackName="half",
        TemplateBody=json.dumps({**template, "Outputs": {"TablePlans": {"Value": "x"}}}),
    )
    try:
        yield names
    finally:
        bind_tables(TableNames())


def test_stack_reads_table_names_from_outputs(cli: Run, stack: TableNames, dynamodb: Any) -> None:
    cli("--stack", "tollgate-prod", "plans", "create", "enterprise").ok()
    cli("--stack", "tollgate-prod", "tenants", "create", "bigco", "--plan", "enterprise").ok()
    key = cli("--stack", "tollgate-prod", "keys", "create", "--tenant", "bigco").ok().json
    assert key["tenant_id"] == "bigco"
    for kind in ("plans", "tenants", "keys", "secrets", "audit"):
        assert dynamodb.scan(TableName=getattr(stack, kind))["Items"], kind
        assert not dynamodb.scan(TableName=getattr(TableNames(), kind))["Items"], kind


def test_unknown_stack_is_bad_input(bad_input: Run, stack: TableNames) -> None:
    assert "unknown stack" in bad_input("--stack", "nope", "plans", "list").err


def test_stack_without_table_outputs_fails(cli: Run, stack: TableNames) -> None:
    result = cli("--stack", "half", "plans", "list")
    assert result.code == 1 and "TableTenants" in result.err and result.out == ""
