"""The billing export in CDK: the hourly schedule (off until a destination is configured),
a least-privilege role, the Stripe secret readable only by the export function, and
cdk-nag clean with both destinations on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.infra.cfn import grants, of_type, ref, role_statements
from tests.infra.conftest import Synth, synthesise


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    out: Path = tmp_path_factory.mktemp("cdk-billing")
    return synthesise(
        out, env_name="prod", stack_name="Tollgate-billing-test",
        billing_destinations="stripe,aws-marketplace",
    )  # fmt: skip


def function(synth: Synth) -> tuple[str, dict[str, Any]]:
    logical_id = ref(synth.outputs["BillingExportFunctionName"]["Value"])
    assert logical_id is not None
    return logical_id, synth.resources[logical_id]


def rule(synth: Synth) -> dict[str, Any]:
    fn_id, _ = function(synth)
    (found,) = [
        r["Properties"]
        for r in of_type(synth.resources, "AWS::Events::Rule").values()
        if any(ref(t["Arn"]) == fn_id for t in r["Properties"].get("Targets", []))
    ]
    return found


def role_grants(synth: Synth) -> set[tuple[str, str]]:
    _, fn = function(synth)
    role_id = ref(fn["Properties"]["Role"])
    assert role_id is not None
    return grants(role_statements(synth.resources, role_id))


def test_no_destination_means_the_schedule_is_off_and_nothing_extra_is_granted(
    dev: Synth,
) -> None:
    assert rule(dev)["State"] == "DISABLED"
    actions = {action for action, _ in role_grants(dev)}
    assert not any(a.startswith(("secretsmanager:", "aws-marketplace:")) for a in actions)
    assert "StripeSecretArn" not in dev.outputs
    assert not [k for k in of_type(dev.resources, "AWS::SecretsManager::Secret") if "Stripe" in k]


def test_both_destinations_hourly_least_privilege_and_nag_clean(both: Synth) -> None:
    assert both.error is None, both.error
    props = rule(both)
    assert props["State"] == "ENABLED"
    assert props["ScheduleExpression"] == "cron(45 * * * ? *)"
    _, fn = function(both)
    assert fn["Properties"]["ReservedConcurrentExecutions"] == 1
    env = fn["Properties"]["Environment"]["Variables"]
    assert env["TOLLGATE_BILLING_DESTINATIONS"] == "stripe,aws-marketplace"
    (secret_id,) = [
        k for k in of_type(both.resources, "AWS::SecretsManager::Secret") if "Stripe" in k
    ]
    assert ref(env["TOLLGATE_STRIPE_SECRET_ARN"]) == secret_id
    actions = {action for action, _ in role_grants(both)}
    dynamo = {a for a in actions if a.startswith("dynamodb:")}
    assert dynamo == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:Scan"}
    assert {a for a in actions if a.startswith("secretsmanager:")} == {
        "secretsmanager:GetSecretValue"
    }
    assert {a for a in actions if a.startswith("aws-marketplace:")} == {
        "aws-marketplace:BatchMeterUsage"
    }
    assert not any(a.endswith(("*", "UpdateItem", "DeleteItem")) for a in actions)
    assert "StripeSecretArn" in both.outputs and "TableBilling" in both.outputs
