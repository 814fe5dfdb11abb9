"""Threshold notices (issue 14): the delivery function on the notices table's stream.

* **Emission** happens in the usage aggregator (infra/usage.py grants it ``GetItem`` on
  tenants and plans and ``PutItem`` on notices): one conditional put per notice.
* **Delivery** (``functions.notices.handler``) reads the notices table's stream through a
  mapping built from ``functions.notices.stream.DELIVERY_STREAM`` (the object the local
  pollers read): only notices whose new image is ``pending`` (the webhook item, which holds
  the signing secret, never reaches it), bisection, bounded retries, an SQS on-failure
  queue (SSE-SQS, TLS only, depth alarmed) for records the function itself could not
  finish. It POSTs to tenants' URLs on the internet (no VPC: nothing else to reach), so
  its role may only ``GetItem`` / ``UpdateItem`` the notices table, read that table's
  exact stream ARN and decrypt through DynamoDB; a receiver's failure is recorded on the
  notice (``failed``) and counted (``NoticesDeadLettered``, alarmed in
  infra/observability.py).
* No EventBridge API destination: it cannot compute a per-tenant HMAC over the body.
* Timeout: a round is at most ``NoticeSettings().worst_round_s()`` (27 s); a batch of 10
  records runs 8 at a time, so two rounds back to back plus margin.
"""

from __future__ import annotations

import math
from typing import Final

from aws_cdk import CfnOutput, Duration
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from constructs import Construct

from functions.notices.config import ENV_ATTEMPTS, ENV_BACKOFF, ENV_TIMEOUT, NoticeSettings
from functions.notices.handler import MAX_CONCURRENT
from functions.notices.stream import DELIVERY_HANDLER, DELIVERY_STREAM
from infra.functions import Functions, FunctionSpec
from infra.observability import Observability
from infra.settings import Settings
from infra.streams import stream_consumer

ITERATOR_AGE_ALARM_MS: Final = 10 * 60 * 1000
_STREAM_READ: Final = (
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
)


def delivery_timeout(settings: NoticeSettings) -> Duration:
    """Every record of a full batch, ``MAX_CONCURRENT`` at a time, at its worst, plus 15 s."""
    waves = math.ceil(DELIVERY_STREAM.batch_size / MAX_CONCURRENT)
    return Duration.seconds(math.ceil(waves * settings.worst_round_s()) + 15)


class Notices(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        functions: Functions,
    ) -> None:
        super().__init__(scope, construct_id)
        table = functions.tables.tables["notices"]
        if table.table_stream_arn is None:
            raise ValueError("the notices table needs its stream (functions.common.models)")
        delivery = NoticeSettings()
        self.delivery = functions.add(
            FunctionSpec(
                "NoticeDelivery",
                DELIVERY_HANDLER,
                service="notices",
                description="Tollgate: delivers signed usage.threshold notices to tenants",
                tables={"notices": ("dynamodb:GetItem", "dynamodb:UpdateItem")},
                statements=[
                    iam.PolicyStatement(
                        actions=list(_STREAM_READ), resources=[table.table_stream_arn]
                    )
                ],
                environment={
                    ENV_ATTEMPTS: str(delivery.attempts),
                    ENV_TIMEOUT: f"{delivery.timeout_s:g}",
                    ENV_BACKOFF: f"{delivery.backoff_s:g}",
                },
                timeout=delivery_timeout(delivery),
            )
        )
        consumer = stream_consumer(
            self,
            "Delivery",
            function=self.delivery,
            stream_arn=table.table_stream_arn,
            settings=DELIVERY_STREAM,
            what="notice delivery",
            iterator_age_alarm_ms=ITERATOR_AGE_ALARM_MS,
            lag_means="threshold notices reach tenants late.",
            given_up_means="those notices stay pending: tollgate tenants notices TENANT "
            "shows them; see docs/billing.md.",
            stream="notices",
        )
        self.failures, self.mapping, self.alarms = (
            consumer.failures, consumer.mapping, consumer.alarms,
        )  # fmt: skip
        for output_id, value in (
            ("NoticeDeliveryFunctionName", self.delivery.function_name),
            ("NoticeDeadLetterQueueUrl", self.failures.queue_url),
        ):
            CfnOutput(self, output_id, value=value).override_logical_id(output_id)

    def send_alarms_to(self, observability: Observability) -> None:
        for alarm in self.alarms:
            alarm.add_alarm_action(cw_actions.SnsAction(observability.topic))
