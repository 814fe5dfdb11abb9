"""The usage pipeline in CDK: the aggregator's mapping (numbers shared with the local
pollers), its least-privilege role, failure queue and alarms, the statements bucket and
the monthly schedule."""

from __future__ import annotations

import json
from typing import Any

from functions.usage.stream import AGGREGATOR_HANDLER, AGGREGATOR_STREAM
from tests.infra.cfn import grants, of_type, ref, role_statements
from tests.infra.conftest import Synth


def one(synth: Synth, type_: str) -> tuple[str, dict[str, Any]]:
    (found,) = of_type(synth.resources, type_).items()
    return found


def named(synth: Synth, output: str) -> tuple[str, dict[str, Any]]:
    logical_id = ref(synth.outputs[output]["Value"])
    assert logical_id is not None
    return logical_id, synth.resources[logical_id]


def table_id(synth: Synth, kind: str) -> str:
    logical_id = ref(synth.outputs[f"Table{kind.capitalize()}"]["Value"])
    assert logical_id is not None
    return logical_id


def role_grants(synth: Synth, function: dict[str, Any]) -> set[tuple[str, str]]:
    role_id = ref(function["Properties"]["Role"])
    assert role_id is not None
    return grants(role_statements(synth.resources, role_id))


def mapping(synth: Synth) -> dict[str, Any]:
    (found,) = [
        m["Properties"]
        for m in of_type(synth.resources, "AWS::Lambda::EventSourceMapping").values()
        if ref(m["Properties"]["EventSourceArn"]) == table_id(synth, "usage")
        and ref(m["Properties"]["FunctionName"]) == named(synth, "UsageAggregatorFunctionName")[0]
    ]
    return found


def test_the_mapping_is_built_from_the_shared_stream_settings(synth: Synth) -> None:
    props = mapping(synth)
    s = AGGREGATOR_STREAM
    assert props["EventSourceArn"]["Fn::GetAtt"][1] == "StreamArn"
    assert props["StartingPosition"] == "TRIM_HORIZON"
    assert props["BatchSize"] == s.batch_size
    assert props["MaximumBatchingWindowInSeconds"] == s.batching_window_s
    assert props["MaximumRetryAttempts"] == s.max_retries
    assert props["BisectBatchOnFunctionError"] is True
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["ParallelizationFactor"] == 1  # the watermarks need shard order
    assert props["TumblingWindowInSeconds"] == s.tumbling_window_s > 0  # the shard id
    assert props["MaximumRecordAgeInSeconds"] == s.max_record_age_s
    (pattern,) = [json.loads(f["Pattern"]) for f in props["FilterCriteria"]["Filters"]]
    assert pattern == {"eventName": ["INSERT"]} == s.filter_pattern()


def test_failures_go_to_an_encrypted_tls_only_queue(synth: Synth) -> None:
    queue_id = ref(mapping(synth)["DestinationConfig"]["OnFailure"]["Destination"])
    assert queue_id is not None
    queue = synth.resources[queue_id]
    assert queue["Type"] == "AWS::SQS::Queue"
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    policies = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in of_type(synth.resources, "AWS::SQS::QueuePolicy").values()
        if queue_id in [ref(q) for q in p["Properties"]["Queues"]]
    ]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for statements in policies
        for s in statements
    )
    assert ref(synth.outputs["UsageDeadLetterQueueUrl"]["Value"]) == queue_id


def test_the_aggregator_may_only_update_rollups_and_read_the_usage_stream(synth: Synth) -> None:
    _, fn = named(synth, "UsageAggregatorFunctionName")
    assert fn["Properties"]["Handler"] == AGGREGATOR_HANDLER
    dynamo = {(a, r) for a, r in role_grants(synth, fn) if a.startswith("dynamodb:")}
    usage, rollups = table_id(synth, "usage"), table_id(synth, "rollups")
    assert dynamo == {
        ("dynamodb:UpdateItem", rollups),
        *{(a, usage) for a in ("dynamodb:DescribeStream", "dynamodb:GetRecords",
                               "dynamodb:GetShardIterator", "dynamodb:ListStreams")},
    }  # fmt: skip
    role_id = ref(fn["Properties"]["Role"])
    assert role_id is not None
    stream_statements = [
        s for s in role_statements(synth.resources, role_id) if "dynamodb:GetRecords" in s["Action"]
    ]
    assert [s["Resource"]["Fn::GetAtt"] for s in stream_statements] == [[usage, "StreamArn"]]
    env = fn["Properties"]["Environment"]["Variables"]
    assert ref(env["TOLLGATE_TABLE_ROLLUPS"]) == rollups
    assert ref(env["TOLLGATE_TABLE_USAGE"]) == usage  # the handler checks the stream's table


def test_iterator_age_and_failure_queue_alarms_reach_the_alerts_topic(synth: Synth) -> None:
    topic = ref(synth.outputs["AlertsTopicArn"]["Value"])
    alarms = of_type(synth.resources, "AWS::CloudWatch::Alarm").values()
    by_metric = {a["Properties"].get("MetricName"): a["Properties"] for a in alarms}
    age = by_metric["IteratorAge"]
    assert age["Namespace"] == "AWS/Lambda" and age["Statistic"] == "Maximum"
    assert age["Threshold"] <= 15 * 60 * 1000
    depth = by_metric["ApproximateNumberOfMessagesVisible"]
    assert depth["Threshold"] == 1 and depth["Namespace"] == "AWS/SQS"
    for alarm in (age, depth):
        assert [ref(a) for a in alarm["AlarmActions"]] == [topic]


def test_the_statements_bucket_is_encrypted_versioned_private_and_logged(synth: Synth) -> None:
    bucket_id, bucket = named(synth, "StatementsBucketName")
    props = bucket["Properties"]
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    key_id = ref(rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"])
    assert key_id is not None
    assert synth.resources[key_id]["Properties"]["EnableKeyRotation"] is True
    assert rule["BucketKeyEnabled"] is True
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    logs_id = ref(props["LoggingConfiguration"]["DestinationBucketName"])
    assert logs_id in of_type(synth.resources, "AWS::S3::Bucket")
    assert bucket["DeletionPolicy"] == "Retain"  # financial records outlive the stack
    (policy,) = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in of_type(synth.resources, "AWS::S3::BucketPolicy").values()
        if ref(p["Properties"]["Bucket"]) == bucket_id
    ]
    assert any(s["Effect"] == "Deny" and "aws:SecureTransport" in json.dumps(s) for s in policy)


def test_only_the_statements_function_may_write_and_only_under_its_prefix(synth: Synth) -> None:
    bucket_id, _ = named(synth, "StatementsBucketName")
    _, fn = named(synth, "StatementsFunctionName")
    (policy,) = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in of_type(synth.resources, "AWS::S3::BucketPolicy").values()
        if ref(p["Properties"]["Bucket"]) == bucket_id
    ]
    (allow,) = [s for s in policy if s["Effect"] == "Allow"]
    assert allow["Action"] == "s3:PutObject"
    assert ref(allow["Principal"]["AWS"]) == ref(fn["Properties"]["Role"])
    assert allow["Resource"]["Fn::Join"][1][1] == "/statements/*"
    pairs = role_grants(synth, fn)
    assert {a for a, _ in pairs if a.startswith("dynamodb:")} == {
        "dynamodb:Query", "dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:Scan"
    }  # fmt: skip
    assert not any(a.startswith("s3:") for a, _ in pairs)
    env = fn["Properties"]["Environment"]["Variables"]
    assert ref(env["TOLLGATE_STATEMENTS_BUCKET"]) == bucket_id


def test_statements_run_monthly_for_last_month(synth: Synth) -> None:
    _, fn = named(synth, "StatementsFunctionName")
    fn_id = ref(synth.outputs["StatementsFunctionName"]["Value"])
    rules = [
        r["Properties"]
        for r in of_type(synth.resources, "AWS::Events::Rule").values()
        if any(ref(t["Arn"]) == fn_id for t in r["Properties"].get("Targets", []))
    ]
    (rule,) = rules
    assert rule["ScheduleExpression"] == "cron(0 6 1 * ? *)"
    (target,) = rule["Targets"]
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2
    assert fn["Properties"]["Handler"] == "functions.statements.handler.handler"


def test_the_reservation_sweep_runs_every_five_minutes_with_least_privilege(
    synth: Synth,
) -> None:
    fn_id, fn = named(synth, "ReservationSweepFunctionName")
    assert fn["Properties"]["Handler"] == "functions.sweep.handler.handler"
    (rule,) = [
        r["Properties"]
        for r in of_type(synth.resources, "AWS::Events::Rule").values()
        if any(ref(t["Arn"]) == fn_id for t in r["Properties"].get("Targets", []))
    ]
    assert rule["ScheduleExpression"] == "rate(5 minutes)"
    assert fn["Properties"]["Timeout"] < 300  # a run ends before the next one starts
    assert fn["Properties"]["ReservedConcurrentExecutions"] == 1
    pairs = role_grants(synth, fn)
    gate, usage = table_id(synth, "gate"), table_id(synth, "usage")
    on = {(a, r) for a, r in pairs if a.startswith("dynamodb:")}
    assert {a for a, r in on if r == gate} == {
        "dynamodb:Query", "dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:UpdateItem"
    }  # fmt: skip
    assert {a for a, r in on if r == usage} == {"dynamodb:PutItem"}
    env = fn["Properties"]["Environment"]["Variables"]
    assert {k for k in env if k.startswith("TOLLGATE_TABLE_")} == {
        "TOLLGATE_TABLE_GATE", "TOLLGATE_TABLE_USAGE"
    }  # fmt: skip
