"""Alarms reach the encrypted alerts topic; every function is watched; the alarms and the
dashboard read metrics the functions really write, with the dimensions they write them."""

from __future__ import annotations

import json
import re
from typing import Any

from functions.authorizer import logic
from infra.observability import ALERT_ON_ANY, METRICS_NAMESPACE
from tests.infra.cfn import of_type, ref
from tests.infra.conftest import ROOT, Synth

INSIGHTS = re.compile(r'SELECT SUM\((\w+)\) FROM "(\w+)"')


def alarms_on(synth: Synth, function_id: str) -> dict[str, dict[str, Any]]:
    """Single-metric alarms on one function, by metric name."""
    return {
        a["Properties"]["MetricName"]: a["Properties"]
        for a in of_type(synth.resources, "AWS::CloudWatch::Alarm").values()
        if any(ref(d.get("Value")) == function_id for d in a["Properties"].get("Dimensions", []))
    }


def math_alarms(synth: Synth) -> dict[str, dict[str, Any]]:
    return {
        k: a["Properties"]
        for k, a in of_type(synth.resources, "AWS::CloudWatch::Alarm").items()
        if "Metrics" in a["Properties"]
    }


def stats(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """The MetricStat metrics a math alarm reads."""
    return [q["MetricStat"]["Metric"] for q in alarm["Metrics"] if "MetricStat" in q]


def function_of(synth: Synth, output: str) -> str:
    logical_id = ref(synth.outputs[output]["Value"])
    assert logical_id is not None
    return logical_id


def authorizer_errors_alarm(synth: Synth) -> dict[str, Any]:
    authorizer = function_of(synth, "AuthorizerFunctionName")
    (alarm,) = [
        a
        for a in math_alarms(synth).values()
        if any(
            m["MetricName"] == "Errors"
            and any(ref(d["Value"]) == authorizer for d in m["Dimensions"])
            for m in stats(a)
        )
    ]
    return alarm


def function_env(synth: Synth, output: str) -> dict[str, Any]:
    variables: dict[str, Any] = synth.resources[function_of(synth, output)]["Properties"][
        "Environment"
    ]["Variables"]
    return variables


def emitted_metrics() -> set[str]:
    """Every metric name the Lambda code writes (Powertools ``add_metric``)."""
    names = set()
    for path in (ROOT / "functions").rglob("*.py"):
        names |= set(re.findall(r'add_metric\(\s*name="(\w+)"', path.read_text()))
    return names


def render(value: Any) -> str:
    """A Fn::Join string with its tokens as <LogicalId>."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        return "".join(render(v) for v in value["Fn::Join"][1])
    logical_id = ref(value)
    if logical_id is not None:
        return f"<{logical_id}>"
    return "<token>"


def dashboard(synth: Synth) -> dict[str, Any]:
    (board,) = of_type(synth.resources, "AWS::CloudWatch::Dashboard").values()
    body: dict[str, Any] = json.loads(render(board["Properties"]["DashboardBody"]))
    return body


# -- functions ---------------------------------------------------------------------------------


def test_every_function_alarms_on_errors_and_throttles(dev: Synth) -> None:
    authorizer = function_of(dev, "AuthorizerFunctionName")
    for function_id in of_type(dev.resources, "AWS::Lambda::Function"):
        alarms = alarms_on(dev, function_id)
        assert "Throttles" in alarms, function_id
        if function_id != authorizer:
            assert alarms["Errors"]["Threshold"] == 1, function_id
    assert authorizer_errors_alarm(dev)


def test_authorizer_errors_alarm_leaves_out_its_401s(dev: Synth) -> None:
    """The authorizer raises for every 401 (API Gateway's contract), which Lambda counts as
    an error: the alarm subtracts exactly the 401 decisions, so stray keys do not page."""
    alarm = authorizer_errors_alarm(dev)
    raising = {
        d.code
        for d in vars(logic).values()
        if isinstance(d, logic.Decision) and d.kind == "unauthorized"
    }
    assert raising == {"missing_api_key", "invalid_api_key"}
    decisions = [m for m in stats(alarm) if m["MetricName"] == "AuthorizerDecision"]
    assert {m["Namespace"] for m in decisions} == {METRICS_NAMESPACE}
    dims = [{d["Name"]: d["Value"] for d in m["Dimensions"]} for m in decisions]
    assert sorted(d["reason"] for d in dims) == sorted(raising)
    # the authorizer's own service name, as its environment gives it to Powertools
    service = function_env(dev, "AuthorizerFunctionName")["POWERTOOLS_SERVICE_NAME"]
    assert service == "tollgate-authorizer"
    assert all(d["service"] == service and len(d) == 2 for d in dims)
    (expression,) = [q for q in alarm["Metrics"] if q.get("ReturnData", True) and "Expression" in q]
    ids = {q["Id"]: q for q in alarm["Metrics"]}
    (errors_id,) = [
        k
        for k, q in ids.items()
        if "MetricStat" in q and stats({"Metrics": [q]})[0]["MetricName"] == "Errors"
    ]
    assert expression["Expression"].startswith(f"FILL({errors_id}, 0) - ")
    assert expression["Expression"].count(" - FILL(") == len(raising)
    assert alarm["Threshold"] == 5


def test_authorizer_latency_alarm(dev: Synth) -> None:
    authorizer = function_of(dev, "AuthorizerFunctionName")
    duration = alarms_on(dev, authorizer)["Duration"]
    assert duration["ExtendedStatistic"] == "p99"
    assert duration["Threshold"] == 1000
    assert duration["EvaluationPeriods"] == 3


# -- Tollgate's metrics ------------------------------------------------------------------------


def test_the_namespace_is_what_the_functions_write(dev: Synth) -> None:
    from functions.common.observability import metrics

    assert metrics.namespace == METRICS_NAMESPACE == "Tollgate"
    for name, fn in of_type(dev.resources, "AWS::Lambda::Function").items():
        env = fn["Properties"]["Environment"]["Variables"]
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == METRICS_NAMESPACE, name


def test_each_function_reports_under_its_own_service_name(dev: Synth) -> None:
    """Finding 7: every function's ``service`` (log key and metric dimension) is its own."""
    services = {
        name: fn["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
        for name, fn in of_type(dev.resources, "AWS::Lambda::Function").items()
    }
    assert len(set(services.values())) == len(services), services
    assert all(re.fullmatch(r"tollgate-[a-z]+(-[a-z]+)*", s) for s in services.values()), services
    assert function_env(dev, "ApiFunctionName")["POWERTOOLS_SERVICE_NAME"] == "tollgate-api"


def test_any_suspension_and_every_reported_invariant_breach_alarms(dev: Synth) -> None:
    """One data point of each is an alert, whatever dimensions the invocation added (the
    detector's metrics carry its ``signal`` dimension): Metrics Insights sums them all."""
    by_metric = {}
    for alarm in math_alarms(dev).values():
        for q in alarm["Metrics"]:
            m = INSIGHTS.fullmatch(q.get("Expression", ""))
            if m:
                assert m.group(2) == METRICS_NAMESPACE
                assert q["Period"] == 60
                by_metric[m.group(1)] = alarm
    required = {
        "KeySuspended",
        "AuthorizerDependencyFailure",
        "UsageEventNotWritten",
        "SettleFailed",
        "RevokeFailed",
        "EventNotPublished",
    }
    assert required <= set(by_metric) == {metric for metric, _, _ in ALERT_ON_ANY}
    for metric in required:
        alarm = by_metric[metric]
        assert alarm["Threshold"] == 1, metric
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold", metric
        assert alarm["TreatMissingData"] == "notBreaching", metric


def test_every_custom_metric_read_is_one_the_code_writes(dev: Synth) -> None:
    """No alarm or widget waits for a metric nobody emits (a renamed metric fails here)."""
    template = json.dumps(dev.data)
    read = set(re.findall(r"SELECT SUM\((\w+)\)", template))
    read |= {
        m["MetricName"]
        for a in math_alarms(dev).values()
        for m in stats(a)
        if m["Namespace"] == METRICS_NAMESPACE
    }
    assert read
    assert read <= emitted_metrics(), sorted(read - emitted_metrics())


def test_the_dashboard_shows_every_alarm_and_what_the_issue_asks_for(dev: Synth) -> None:
    body = dashboard(dev)
    widgets = body["widgets"]
    (status,) = [w for w in widgets if w["type"] == "alarm"]
    shown = {a.strip("<>").split(".")[0] for a in status["properties"]["alarms"]}
    assert shown == set(of_type(dev.resources, "AWS::CloudWatch::Alarm"))
    graphs = " ".join(json.dumps(w) for w in widgets if w["type"] == "metric")
    for metric in (
        "AuthorizerDecision",
        "Tokens",
        "SpendMicroUsd",
        "KeySuspended",
        "KeysRevoked",
        "LeakedKeysRevoked",
    ):
        assert f"SELECT SUM({metric})" in graphs, metric
    assert 'SELECT SUM(AuthorizerDecision) FROM \\"Tollgate\\" GROUP BY reason' in graphs
    assert "IteratorAge" in graphs and "Latency" in graphs and "Duration" in graphs
    assert (
        dev.resources[next(iter(of_type(dev.resources, "AWS::CloudWatch::Dashboard")))][
            "Properties"
        ]["DashboardName"]
        == dev.stack.stack_name
    )


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


def test_no_function_loads_the_tracer(dev: Synth) -> None:
    """The tracing decision (docs/operations.md): no Powertools Tracer in any function (its
    import costs more than the authorizer's whole cold-start budget), and Lambda's active
    tracing only where a FunctionSpec asks for it; none does today."""
    imports_tracer = re.compile(
        r"^\s*(from aws_lambda_powertools(\.tracing)? import .*\bTracer\b|import aws_xray_sdk)",
        re.MULTILINE,
    )
    for path in (ROOT / "functions").rglob("*.py"):
        assert not imports_tracer.search(path.read_text()), path
    for function_id, fn in of_type(dev.resources, "AWS::Lambda::Function").items():
        assert fn["Properties"].get("TracingConfig", {}).get("Mode") != "Active", function_id
