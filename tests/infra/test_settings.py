"""Environments and stack names through CDK context."""

from __future__ import annotations

import pytest

from infra.settings import Settings
from tests.infra.conftest import Synth


def settings(**context: object) -> Settings:
    from aws_cdk import App

    return Settings.from_context(App(context=context).node)


def test_defaults_are_a_dev_stack() -> None:
    s = settings()
    assert (s.env_name, s.stack_name, s.stage_name) == ("dev", "Tollgate-dev", "prod")
    assert s.deletion_protection is False
    assert s.bedrock_models == ("anthropic.claude-3-haiku-20240307-v1:0",)


def test_developers_deploy_side_by_side_and_models_from_the_command_line() -> None:
    s = settings(stack_name="Tollgate-alice", bedrock_models="a.b-v1:0, c.d-v2:0")
    assert s.stack_name == "Tollgate-alice"
    assert s.bedrock_models == ("a.b-v1:0", "c.d-v2:0")
    assert settings(env_name="prod").stack_name == "Tollgate-prod"


def test_unknown_environment_is_refused() -> None:
    with pytest.raises(ValueError, match="env_name"):
        settings(env_name="staging")


def test_stack_name_comes_from_context(dev: Synth, prod: Synth) -> None:
    assert dev.stack.stack_name == "Tollgate-dev"
    assert prod.stack.stack_name == "Tollgate-prod-test"
