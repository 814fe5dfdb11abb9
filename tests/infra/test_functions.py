"""Functions: arm64 + Python 3.13 from one asset, env vars that match their tables, and roles
with exactly the actions each function uses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from functions.common.config import TABLE_ENV
from infra.functions import RUNTIME_PROVIDED, FunctionSpec, PipBundler, remove_distributions
from tests.infra.cfn import grants, of_type, ref, role_statements
from tests.infra.conftest import Synth, synthesise

TABLE_BY_ENV = {v: k for k, v in TABLE_ENV.items()}


def functions(synth: Synth) -> dict[str, dict[str, Any]]:
    return of_type(synth.resources, "AWS::Lambda::Function")


def function_named(synth: Synth, output: str) -> dict[str, Any]:
    logical_id = ref(synth.outputs[output]["Value"])
    assert logical_id is not None
    return synth.resources[logical_id]


def table_ids(synth: Synth) -> dict[str, str]:
    """Table logical id -> kind."""
    outputs = synth.outputs
    return {ref(outputs[f"Table{k.capitalize()}"]["Value"]) or "": k for k in TABLE_ENV}


def dynamodb_grants(synth: Synth, function: dict[str, Any]) -> set[tuple[str, str]]:
    role_id = ref(function["Properties"]["Role"])
    assert role_id is not None
    tables = table_ids(synth)

    def kind(resource: str) -> str:  # an index ARN "<Table.Arn>/index/name" is its table's
        if resource.startswith("<") and ".Arn>/index/" in resource:
            return tables.get(resource[1 : resource.index(".Arn>")], resource)
        return tables.get(resource, resource)

    return {
        (action, kind(resource))
        for action, resource in grants(role_statements(synth.resources, role_id))
        if action.startswith("dynamodb:")
    }


def all_grants(synth: Synth, function: dict[str, Any]) -> set[tuple[str, str]]:
    role_id = ref(function["Properties"]["Role"])
    assert role_id is not None
    return grants(role_statements(synth.resources, role_id))


def test_every_function_is_python313_on_arm64_from_one_asset(dev: Synth) -> None:
    fns = functions(dev)
    assert len(fns) >= 2
    assets = set()
    for name, fn in fns.items():
        props = fn["Properties"]
        assert props["Runtime"] == "python3.13", name
        assert props["Architectures"] == ["arm64"], name
        assert props["Handler"].startswith("functions."), name
        assets.add(json.dumps(props["Code"], sort_keys=True))
        env = props["Environment"]["Variables"]
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Tollgate"
        assert env["POWERTOOLS_SERVICE_NAME"].startswith("tollgate-"), name
        assert env["LOG_LEVEL"] == "INFO"
    assert len(assets) == 1, "one shared code asset"


def test_each_function_gets_its_own_service_name(dev: Synth) -> None:
    """Finding 7: ``POWERTOOLS_SERVICE_NAME`` is ``tollgate-<service>`` and unique per function
    (functions/common/observability.py no longer overrides it); a second function with a
    service already taken is refused."""
    by_handler = {
        fn["Properties"]["Handler"]: fn["Properties"]["Environment"]["Variables"][
            "POWERTOOLS_SERVICE_NAME"
        ]
        for fn in functions(dev).values()
    }
    assert len(set(by_handler.values())) == len(by_handler) == len(functions(dev))
    assert by_handler["functions.authorizer.handler.handler"] == "tollgate-authorizer"
    assert by_handler["functions.api.handler.handler"] == "tollgate-api"
    fns = dev.stack.functions
    assert {spec.service_name for spec in fns.specs} == set(by_handler.values())
    with pytest.raises(ValueError, match="own service name"):
        fns.add(FunctionSpec("Another", "functions.api.handler.handler", service="api"))


def test_table_env_vars_are_exactly_the_tables_the_role_may_touch(dev: Synth) -> None:
    tables = table_ids(dev)
    for name, fn in functions(dev).items():
        env = fn["Properties"]["Environment"]["Variables"]
        env_tables = {TABLE_BY_ENV[k] for k in env if k in TABLE_BY_ENV}
        for k in env_tables:
            assert tables[ref(env[TABLE_ENV[k]]) or ""] == k, (name, k)
        granted = {kind for _, kind in dynamodb_grants(dev, fn)}
        assert env_tables == granted, name


def test_authorizer_role_exactly_secrets_and_the_gate(dev: Synth) -> None:
    """Secrets read; the gate's key items and shards written (and read when borrowing);
    nothing on the tenants table: the authorizer cannot change a plan or a status."""
    fn = function_named(dev, "AuthorizerFunctionName")
    assert fn["Properties"]["Handler"] == "functions.authorizer.handler.handler"
    assert dynamodb_grants(dev, fn) == {
        ("dynamodb:GetItem", "secrets"),
        ("dynamodb:GetItem", "gate"),
        ("dynamodb:BatchGetItem", "gate"),
        ("dynamodb:UpdateItem", "gate"),
    }
    assert {a for a, _ in all_grants(dev, fn)} == {
        "dynamodb:BatchGetItem",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "kms:Decrypt",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }


def test_api_role_may_invoke_a_listed_embeddings_model(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Titan embeddings go through InvokeModel: listing the model in ``bedrock_models``
    is all it takes, and only the listed models are granted."""
    titan = "amazon.titan-embed-text-v2:0"
    out = synthesise(
        tmp_path_factory.mktemp("cdk-titan"),
        env_name="dev",
        bedrock_models=f"anthropic.claude-3-haiku-20240307-v1:0,{titan}",
    )
    pairs = all_grants(out, function_named(out, "ApiFunctionName"))
    arn = "arn:<AWS::Partition>:bedrock:<AWS::Region>::foundation-model/"
    assert {r for a, r in pairs if a == "bedrock:InvokeModel"} == {
        arn + "anthropic.claude-3-haiku-20240307-v1:0",
        arn + titan,
    }


def test_api_role_exact_actions(dev: Synth) -> None:
    fn = function_named(dev, "ApiFunctionName")
    assert fn["Properties"]["Handler"] == "functions.api.handler.handler"
    assert dynamodb_grants(dev, fn) == {
        # reserve / settle, and each reservation's marker (functions/gate/reservations.py)
        ("dynamodb:BatchGetItem", "gate"),
        ("dynamodb:UpdateItem", "gate"),
        ("dynamodb:PutItem", "gate"),
        ("dynamodb:DeleteItem", "gate"),
        ("dynamodb:PutItem", "usage"),
        ("dynamodb:GetItem", "plans"),
        ("dynamodb:GetItem", "jobs"),
        ("dynamodb:Query", "jobs"),
    }
    pairs = all_grants(dev, fn)
    bedrock = {r for a, r in pairs if a.startswith("bedrock:")}
    assert {a for a, _ in pairs if a.startswith("bedrock:")} == {
        "bedrock:InvokeModel",
        "bedrock:InvokeModelWithResponseStream",  # ConverseStream
    }
    assert bedrock == {
        "arn:<AWS::Partition>:bedrock:<AWS::Region>::foundation-model/"
        "anthropic.claude-3-haiku-20240307-v1:0"
    }
    (secret_id,) = [  # the upstream's (the leak webhook has its own: GitHubTokenSecret)
        s for s in of_type(dev.resources, "AWS::SecretsManager::Secret") if "Upstream" in s
    ]
    assert {(a, r) for a, r in pairs if a.startswith("secretsmanager:")} == {
        ("secretsmanager:GetSecretValue", secret_id)
    }
    env = fn["Properties"]["Environment"]["Variables"]
    assert ref(env["TOLLGATE_UPSTREAM_SECRET_ARN"]) == secret_id


def test_no_wildcards_and_kms_only_through_dynamodb(synth: Synth) -> None:
    (key_id,) = {
        ref(t["Properties"]["SSESpecification"]["KMSMasterKeyId"])
        for t in of_type(synth.resources, "AWS::DynamoDB::Table").values()
    }
    for name, fn in functions(synth).items():
        role_id = ref(fn["Properties"]["Role"])
        assert role_id is not None
        statements = role_statements(synth.resources, role_id)
        for action, resource in grants(statements):
            assert "*" not in action, (name, action)
            assert "*" not in resource, (name, action, resource)
        for statement in statements:
            if "kms:Decrypt" in statement["Action"]:
                assert statement["Action"] == "kms:Decrypt"
                assert ref(statement["Resource"]) == key_id
                via = statement["Condition"]["StringEquals"]["kms:ViaService"]
                assert "dynamodb." in json.dumps(via)


def test_each_function_logs_to_its_own_group_with_retention(synth: Synth) -> None:
    retention = 90 if synth.stack.node.try_get_context("env_name") == "prod" else 7
    groups = of_type(synth.resources, "AWS::Logs::LogGroup")
    for name, fn in functions(synth).items():
        group_id = ref(fn["Properties"]["LoggingConfig"]["LogGroup"])
        assert group_id in groups, name
        assert groups[group_id]["Properties"]["RetentionInDays"] == retention
        role_id = ref(fn["Properties"]["Role"])
        assert role_id is not None
        logs = {r for a, r in grants(role_statements(synth.resources, role_id)) if "logs:" in a}
        assert logs == {group_id}, name
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == retention


# --- the bundler, without network --------------------------------------------------------


def _fake_dist(target: Path, name: str, files: dict[str, str]) -> None:
    info = target / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    record = [f"{path},sha256=x,1" for path in files] + [f"{info.name}/RECORD,,"]
    (info / "RECORD").write_text("\n".join(record) + "\n")
    for path, text in files.items():
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        (target / path).write_text(text)


def test_remove_distributions_removes_exactly_the_listed_files(tmp_path: Path) -> None:
    _fake_dist(tmp_path, "botocore", {"botocore/__init__.py": "", "botocore/data/x.json": "{}"})
    _fake_dist(tmp_path, "six", {"six.py": ""})
    _fake_dist(tmp_path, "pydantic", {"pydantic/__init__.py": ""})
    remove_distributions(tmp_path, RUNTIME_PROVIDED)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pydantic", "pydantic-1.0.dist-info"]


def test_pip_bundler_copies_functions_and_drops_runtime_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def fake_pip(argv: list[str], check: bool, **_: object) -> object:
        if "--target" not in argv:  # the probe for a python3.13 to precompile with: none
            return type("Done", (), {"returncode": 1})()
        calls.append(argv)
        target = Path(argv[argv.index("--target") + 1])
        _fake_dist(target, "boto3", {"boto3/__init__.py": ""})
        _fake_dist(target, "pynamodb", {"pynamodb/__init__.py": ""})
        (target / "bin").mkdir()
        (target / "bin" / "jp.py").write_text("")
        return type("Done", (), {"returncode": 0})()

    monkeypatch.setattr("infra.functions.subprocess.run", fake_pip)
    out = tmp_path / "out"
    assert PipBundler(cache=tmp_path / "cache").try_bundle(str(out)) is True
    (argv,) = calls
    for flag in ("manylinux2014_aarch64", "--only-binary=:all:", "3.13", "cp", "--no-compile"):
        assert flag in argv
    assert (out / "functions" / "common" / "config.py").is_file()
    assert not list(out.rglob("__pycache__"))
    assert sorted(p.name for p in out.iterdir()) == [
        "functions",
        "pynamodb",
        "pynamodb-1.0.dist-info",
    ]


def test_audit_trail_is_append_only_for_every_function(synth: Synth) -> None:
    for name, fn in functions(synth).items():
        on_audit = {action for action, kind in dynamodb_grants(synth, fn) if kind == "audit"}
        assert on_audit <= {"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Query"}, name
