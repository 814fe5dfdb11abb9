"""Detection and response in CDK: the detector's mapping (numbers shared with the local
pollers) and least-privilege role, the event bus and its rule to the encrypted alerts topic,
the refusals subscription, the revoke function and the responders' managed policy, and the
leak webhook served by its own function."""

from __future__ import annotations

import json
from typing import Any

from functions.common.routes import ROUTES
from functions.detector.stream import DETECTOR_STREAM, REFUSALS_FILTER
from functions.respond.events import DETAIL_TYPES, ENV_EVENT_BUS, SOURCE
from tests.infra.cfn import grants, of_type, ref, resource_paths, role_statements
from tests.infra.conftest import Synth

LOGS = {"logs:CreateLogStream", "logs:PutLogEvents"}


def named(synth: Synth, output: str) -> tuple[str, dict[str, Any]]:
    logical_id = ref(synth.outputs[output]["Value"])
    assert logical_id is not None, output
    return logical_id, synth.resources[logical_id]


def table_id(synth: Synth, kind: str) -> str:
    return named(synth, f"Table{kind.capitalize()}")[0]


def function_by_handler(synth: Synth, handler: str) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (k, v)
        for k, v in of_type(synth.resources, "AWS::Lambda::Function").items()
        if v["Properties"].get("Handler") == handler
    ]
    return found


def role_grants(synth: Synth, function: dict[str, Any]) -> set[tuple[str, str]]:
    role_id = ref(function["Properties"]["Role"])
    assert role_id is not None
    return grants(role_statements(synth.resources, role_id))


def actions_on(pairs: set[tuple[str, str]], logical_id: str) -> set[str]:
    return {a for a, r in pairs if r == logical_id or r.startswith(f"<{logical_id}.Arn>/index/")}


def detector_mapping(synth: Synth) -> dict[str, Any]:
    detector_id, _ = named(synth, "DetectorFunctionName")
    (found,) = [
        m["Properties"]
        for m in of_type(synth.resources, "AWS::Lambda::EventSourceMapping").values()
        if ref(m["Properties"]["FunctionName"]) == detector_id
    ]
    return found


def test_the_detector_mapping_is_built_from_the_shared_stream_settings(synth: Synth) -> None:
    props = detector_mapping(synth)
    s = DETECTOR_STREAM
    assert ref(props["EventSourceArn"]) == table_id(synth, "usage")
    assert props["EventSourceArn"]["Fn::GetAtt"][1] == "StreamArn"
    assert props["BatchSize"] == s.batch_size
    assert props["MaximumBatchingWindowInSeconds"] == s.batching_window_s
    assert props["MaximumRetryAttempts"] == s.max_retries <= 10  # bounded
    assert props["BisectBatchOnFunctionError"] is True
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["ParallelizationFactor"] == 1  # the per-shard marks need shard order
    assert props["TumblingWindowInSeconds"] == s.tumbling_window_s > 0  # the shard id
    (pattern,) = [json.loads(f["Pattern"]) for f in props["FilterCriteria"]["Filters"]]
    assert pattern == {"eventName": ["INSERT"]} == s.filter_pattern()
    queue_id = ref(props["DestinationConfig"]["OnFailure"]["Destination"])
    assert queue_id is not None
    queue = synth.resources[queue_id]
    assert queue["Type"] == "AWS::SQS::Queue"
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    assert ref(synth.outputs["DetectorDeadLetterQueueUrl"]["Value"]) == queue_id


def test_the_detector_role_has_only_what_it_uses(synth: Synth) -> None:
    _, detector = named(synth, "DetectorFunctionName")
    pairs = role_grants(synth, detector)
    bus_id, _ = named(synth, "EventBusName")
    assert actions_on(pairs, table_id(synth, "detector")) == {
        "dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem",
    }  # fmt: skip
    assert actions_on(pairs, table_id(synth, "audit")) == {"dynamodb:PutItem", "dynamodb:Query"}
    assert actions_on(pairs, table_id(synth, "keys")) == {"dynamodb:GetItem", "dynamodb:UpdateItem"}
    assert actions_on(pairs, table_id(synth, "tenants")) == set()  # the gate holds statuses
    assert actions_on(pairs, table_id(synth, "gate")) == {"dynamodb:Query", "dynamodb:UpdateItem"}
    assert actions_on(pairs, table_id(synth, "plans")) == {"dynamodb:GetItem"}
    usage_id = table_id(synth, "usage")
    stream_actions = {
        "dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
    }  # fmt: skip
    assert actions_on(pairs, usage_id) == stream_actions  # the stream only, not the table
    role_id = ref(detector["Properties"]["Role"])
    assert role_id is not None
    (on_stream,) = [
        st
        for st in role_statements(synth.resources, role_id)
        if "dynamodb:GetRecords" in st["Action"]
    ]
    assert on_stream["Resource"] == {"Fn::GetAtt": [usage_id, "StreamArn"]}
    assert ("events:PutEvents", bus_id) in pairs
    everything = {a for a, _ in pairs}
    assert not any(a.endswith("*") for a in everything)
    env = detector["Properties"]["Environment"]["Variables"]
    assert ref(env[ENV_EVENT_BUS]) == bus_id


def test_responders_roles_are_least_privilege_and_the_audit_stays_append_only(
    synth: Synth,
) -> None:
    for output in ("RevokeFunctionName", "LeakWebhookFunctionName"):
        _, function = named(synth, output)
        pairs = role_grants(synth, function)
        assert actions_on(pairs, table_id(synth, "audit")) == {"dynamodb:PutItem"}, output
        assert actions_on(pairs, table_id(synth, "secrets")) == {"dynamodb:GetItem"}, output
        assert "dynamodb:DeleteItem" not in {a for a, _ in pairs}, output
    _, revoke = named(synth, "RevokeFunctionName")
    assert not actions_on(role_grants(synth, revoke), table_id(synth, "detector"))
    assert actions_on(role_grants(synth, revoke), table_id(synth, "usage")) == {"dynamodb:Query"}
    _, webhook = named(synth, "LeakWebhookFunctionName")
    assert not actions_on(role_grants(synth, webhook), table_id(synth, "usage"))
    # its memory of processed reports (replays): read and write, never delete
    assert actions_on(role_grants(synth, webhook), table_id(synth, "detector")) == {
        "dynamodb:GetItem", "dynamodb:PutItem",
    }  # fmt: skip


def test_responders_get_a_managed_policy_to_invoke_the_revoke_function_only(
    synth: Synth,
) -> None:
    revoke_id, _ = named(synth, "RevokeFunctionName")
    policy_id, policy = named(synth, "ResponderPolicyArn")
    assert policy["Type"] == "AWS::IAM::ManagedPolicy"
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "lambda:InvokeFunction"
    assert statement["Resource"] == {"Fn::GetAtt": [revoke_id, "Arn"]}
    assert policy_id


def test_events_go_from_the_bus_to_the_encrypted_alerts_topic(synth: Synth) -> None:
    bus_id, bus = named(synth, "EventBusName")
    assert bus["Type"] == "AWS::Events::EventBus"
    topic_id, topic = named(synth, "AlertsTopicArn")
    assert topic["Properties"]["KmsMasterKeyId"]
    (rule,) = [
        r["Properties"]
        for r in of_type(synth.resources, "AWS::Events::Rule").values()
        if ref(r["Properties"].get("EventBusName")) == bus_id
    ]
    assert rule["EventPattern"] == {"source": [SOURCE], "detail-type": list(DETAIL_TYPES)}
    (target,) = rule["Targets"]
    assert ref(target["Arn"]) == topic_id
    role_id = ref(target["RoleArn"])
    assert role_id is not None
    publisher = grants(role_statements(synth.resources, role_id))
    assert ("sns:Publish", topic_id) in publisher
    assert {a for a, _ in publisher} == {"sns:Publish", "kms:Decrypt", "kms:GenerateDataKey*"}
    for policy in of_type(synth.resources, "AWS::SNS::TopicPolicy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Deny" or "Service" not in statement["Principal"]


def test_detector_alarms_go_to_the_alerts_topic(synth: Synth) -> None:
    topic_id, _ = named(synth, "AlertsTopicArn")
    detector_id, _ = named(synth, "DetectorFunctionName")
    alarms = [
        a["Properties"]
        for a in of_type(synth.resources, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName")
        in ("IteratorAge", "ApproximateNumberOfMessagesVisible")
        and "detector" in a["Properties"]["AlarmDescription"]
    ]
    assert len(alarms) == 2
    for alarm in alarms:
        assert [ref(x) for x in alarm["AlarmActions"]] == [topic_id]
    (age,) = [a for a in alarms if a["MetricName"] == "IteratorAge"]
    assert {"Name": "FunctionName", "Value": {"Ref": detector_id}} in age["Dimensions"]


def test_refused_requests_in_the_access_logs_feed_the_stuffing_signal(synth: Synth) -> None:
    refusals_id, _ = function_by_handler(synth, "functions.detector.handler.refusals_handler")
    (subscription,) = of_type(synth.resources, "AWS::Logs::SubscriptionFilter").values()
    props = subscription["Properties"]
    assert props["FilterPattern"] == REFUSALS_FILTER
    assert ref(props["DestinationArn"]) == refusals_id
    (stage,) = of_type(synth.resources, "AWS::ApiGateway::Stage").values()
    access_logs = stage["Properties"]["AccessLogSetting"]["DestinationArn"]
    log_group = ref(props["LogGroupName"])
    assert log_group and f'"Ref": "{log_group}"' in json.dumps(access_logs)
    permissions = [
        p["Properties"]
        for p in of_type(synth.resources, "AWS::Lambda::Permission").values()
        if ref(p["Properties"]["FunctionName"]) == refusals_id
    ]
    assert [p["Principal"] for p in permissions] == ["logs.amazonaws.com"]


def test_each_route_is_served_by_the_function_its_route_names(synth: Synth) -> None:
    api_id, _ = named(synth, "ApiFunctionName")
    webhook_id, _ = named(synth, "LeakWebhookFunctionName")
    token_id, _ = named(synth, "TokenExchangeFunctionName")
    serving = {"api": api_id, "webhook": webhook_id, "token": token_id}
    paths = resource_paths(synth.resources)
    for method in of_type(synth.resources, "AWS::ApiGateway::Method").values():
        props = method["Properties"]
        path = paths[str(ref(props["ResourceId"]))]
        (route,) = [r for r in ROUTES if (r.method, r.path) == (props["HttpMethod"], path)]
        uri = json.dumps(props["Integration"]["Uri"])
        assert serving[route.function] in uri, route
        others = set(serving.values()) - {serving[route.function]}
        assert not any(o in uri for o in others), route
        if not route.authorized:
            assert props["AuthorizationType"] == "NONE"
    webhook = next(r for r in ROUTES if r.function == "webhook")
    assert not webhook.authorized
