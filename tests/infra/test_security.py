"""Security review, automated: cdk-nag AwsSolutions has no unacknowledged finding, every
acknowledgement has a reason, and the templates pass cfn-lint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.conftest import ROOT, Synth, cdk_context

# CDK adds DependsOn on a function's role although Fn::GetAtt already orders them.
ALLOWED_LINT_WARNINGS = {"W3005"}


def test_no_unacknowledged_cdk_nag_finding(synth: Synth) -> None:
    violations = [
        f"{v['ruleName']} at {c['constructPath']}"
        for report in synth.report.get("pluginReports", [])
        for v in report["violations"]
        for c in v["violatingConstructs"]
    ]
    assert synth.error is None and not violations, "\n".join(violations) or synth.error
    (report,) = synth.report["pluginReports"]
    assert report["pluginName"] == "AwsSolutions"
    assert report["conclusion"] == "success"
    for suppressed in report["suppressedViolations"]:
        assert len(suppressed["reason"]) >= 80, suppressed["acknowledgedId"]


def test_cdk_nag_is_live_and_fails_synth_on_a_finding(tmp_path: Path) -> None:
    from aws_cdk import App, Stack
    from aws_cdk import aws_sqs as sqs

    from infra.nag import add_checks

    app = App(context=cdk_context(), outdir=str(tmp_path))
    sqs.Queue(Stack(app, "Bad"), "NoDlqNoSsl")
    add_checks(app)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for r in report["pluginReports"] for v in r["violations"]}
    assert "AwsSolutions-SQS4" in rules


def test_every_acknowledgement_has_a_reason(dev: Synth) -> None:
    from aws_cdk import Validations

    key = Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    acks = [
        entry.data
        for construct in dev.stack.node.find_all()
        for entry in construct.node.metadata
        if entry.type == key
    ]
    assert acks, "the stack acknowledges some findings, each with its reason"
    for ack in acks:  # {rule id: reason}
        for rule_id, reason in ack.items():
            assert rule_id.startswith("AwsSolutions::AwsSolutions-"), rule_id
            assert len(reason) >= 80, rule_id


@pytest.mark.parametrize("env_name", ["dev", "prod"])
def test_template_passes_cfn_lint(env_name: str, request: pytest.FixtureRequest) -> None:
    synth: Synth = request.getfixturevalue(env_name)
    result = subprocess.run(
        [sys.executable, "-m", "cfnlint", "--format", "json", str(synth.template_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    problems = [
        f"{f['Rule']['Id']} {f['Message']}"
        for f in findings
        if f["Rule"]["Id"] not in ALLOWED_LINT_WARNINGS or f["Level"] == "Error"
    ]
    assert not problems, "\n".join(problems)
