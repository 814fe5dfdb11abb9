"""Threshold notices in the stack: the delivery function's mapping is built from the shared
settings (pending notices only: the webhook item never reaches it), its role reads only the
notices table and its stream, failures go to an encrypted queue, alarms reach the topic."""

from __future__ import annotations

import json
from typing import Any

from functions.notices.config import NoticeSettings
from functions.notices.stream import DELIVERY_HANDLER, DELIVERY_STREAM
from tests.infra.cfn import of_type, ref
from tests.infra.conftest import Synth
from tests.infra.test_usage_pipeline import named, role_grants, table_id


def delivery_mapping(synth: Synth) -> dict[str, Any]:
    fn_id = named(synth, "NoticeDeliveryFunctionName")[0]
    (found,) = [
        m["Properties"]
        for m in of_type(synth.resources, "AWS::Lambda::EventSourceMapping").values()
        if ref(m["Properties"]["FunctionName"]) == fn_id
    ]
    return found


def test_the_delivery_mapping_reads_pending_notices_only(synth: Synth) -> None:
    props = delivery_mapping(synth)
    assert props["EventSourceArn"]["Fn::GetAtt"] == [table_id(synth, "notices"), "StreamArn"]
    assert props["BatchSize"] == DELIVERY_STREAM.batch_size
    assert props["MaximumRetryAttempts"] == DELIVERY_STREAM.max_retries
    assert props["BisectBatchOnFunctionError"] is True
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    (pattern,) = [json.loads(f["Pattern"]) for f in props["FilterCriteria"]["Filters"]]
    assert (
        pattern
        == DELIVERY_STREAM.filter_pattern()
        == {
            "eventName": ["INSERT", "MODIFY"],
            "dynamodb": {"NewImage": {"status": {"S": ["pending"]}}},
        }
    )
    queue_id = ref(props["DestinationConfig"]["OnFailure"]["Destination"])
    assert queue_id is not None
    queue = synth.resources[queue_id]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True


def test_the_delivery_function_may_only_read_and_update_notices(synth: Synth) -> None:
    _, fn = named(synth, "NoticeDeliveryFunctionName")
    assert fn["Properties"]["Handler"] == DELIVERY_HANDLER
    notices = table_id(synth, "notices")
    dynamo = {(a, r) for a, r in role_grants(synth, fn) if a.startswith("dynamodb:")}
    assert dynamo == {
        ("dynamodb:GetItem", notices),
        ("dynamodb:UpdateItem", notices),
        *{(a, notices) for a in ("dynamodb:DescribeStream", "dynamodb:GetRecords",
                                 "dynamodb:GetShardIterator", "dynamodb:ListStreams")},
    }  # fmt: skip
    others = {a for a, _ in role_grants(synth, fn)} - {a for a, _ in dynamo}
    assert others <= {"kms:Decrypt", "logs:CreateLogStream", "logs:PutLogEvents", "sqs:SendMessage",
                      "sqs:GetQueueAttributes", "sqs:GetQueueUrl"}, others  # fmt: skip
    props = fn["Properties"]
    assert "VpcConfig" not in props
    assert props["Timeout"] >= NoticeSettings().worst_round_s() * 2
    env = props["Environment"]["Variables"]
    assert ref(env["TOLLGATE_TABLE_NOTICES"]) == notices
    assert env["TOLLGATE_NOTICE_ATTEMPTS"] == "4"


def test_the_notices_table_has_its_stream_and_the_kms_key(synth: Synth) -> None:
    table = synth.resources[table_id(synth, "notices")]["Properties"]
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_IMAGE"
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["SSESpecification"]["SSEType"] == "KMS"


def test_dead_letters_and_lag_are_alarmed_to_the_topic(synth: Synth) -> None:
    topic = ref(synth.outputs["AlertsTopicArn"]["Value"])
    alarms = of_type(synth.resources, "AWS::CloudWatch::Alarm")
    dead = [a for i, a in alarms.items() if "NoticeDeadLettered" in i]
    assert dead, sorted(alarms)
    text = json.dumps(dead[0]["Properties"])
    assert "NoticesDeadLettered" in text
    assert [ref(a) for a in dead[0]["Properties"]["AlarmActions"]] == [topic]
    delivery = [a for i, a in alarms.items() if i.startswith("NoticesDelivery")]
    assert len(delivery) == 2
    for alarm in delivery:
        assert [ref(a) for a in alarm["Properties"]["AlarmActions"]] == [topic]
