"""Alarms reach the encrypted alerts topic; every function is watched."""

from __future__ import annotations

from typing import Any

from tests.infra.cfn import of_type, ref
from tests.infra.conftest import Synth


def alarms_on(synth: Synth, function_id: str) -> dict[str, dict[str, Any]]:
    return {
        a["Properties"]["MetricName"]: a["Properties"]
        for a in of_type(synth.resources, "AWS::CloudWatch::Alarm").values()
        if any(ref(d.get("Value")) == function_id for d in a["Properties"].get("Dimensions", []))
    }


def test_every_function_alarms_on_errors_and_throttles(dev: Synth) -> None:
    for function_id in of_type(dev.resources, "AWS::Lambda::Function"):
        assert {"Errors", "Throttles"} <= set(alarms_on(dev, function_id)), function_id


def test_authorizer_latency_alarm(dev: Synth) -> None:
    authorizer = ref(dev.outputs["AuthorizerFunctionName"]["Value"])
    duration = alarms_on(dev, str(authorizer))["Duration"]
    assert duration["ExtendedStatistic"] == "p99"
    assert duration["Threshold"] == 1000
    assert duration["EvaluationPeriods"] == 3


def test_every_alarm_notifies_the_encrypted_alerts_topic(dev: Synth) -> None:
    (topic_id, topic), *_ = of_type(dev.resources, "AWS::SNS::Topic").items()
    assert ref(dev.outputs["AlertsTopicArn"]["Value"]) == topic_id
    key = dev.resources[str(ref(topic["Properties"]["KmsMasterKeyId"]))]
    assert key["Type"] == "AWS::KMS::Key"
    cloudwatch_may_use_key = [
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s.get("Principal", {}).get("Service") == "cloudwatch.amazonaws.com"
    ]
    assert cloudwatch_may_use_key
    alarms = of_type(dev.resources, "AWS::CloudWatch::Alarm")
    assert alarms
    for name, alarm in alarms.items():
        assert [ref(a) for a in alarm["Properties"]["AlarmActions"]] == [topic_id], name
    (policy,) = of_type(dev.resources, "AWS::SNS::TopicPolicy").values()
    denies = [
        s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"
    ]
    assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in denies)
    assert of_type(dev.resources, "AWS::CloudWatch::Dashboard")
