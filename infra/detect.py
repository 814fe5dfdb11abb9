"""Detection and response: the spike detector, the revoke function, the leak webhook, the
project's event bus and the responders' managed policy.

* **Event bus** (``EventBusName``): Tollgate's events (source ``tollgate``;
  ``tollgate.key.suspended``, ``tollgate.key.spike_alert``, ``tollgate.source.stuffing``,
  ``tollgate.key.revoked``); a rule sends each to the alerts topic
  (:meth:`Detection.connect`, once observability exists), whose KMS key lets EventBridge
  encrypt for that rule only.
* **Detector** (``functions.detector.handler.handler``) on the usage table's stream, its
  mapping built from ``functions.detector.stream.DETECTOR_STREAM`` (the local pollers read
  the same object) with ``infra/usage.py``'s helper: INSERT filter, batch size and window,
  bisection, bounded retries, ``ReportBatchItemFailures``, parallelization 1, a tumbling
  window for the shard id, and an SQS on-failure queue (SSE-SQS, TLS only). Its role reads
  the usage stream (exact ARN), its own state table, plans, and suspends keys
  (``KeyService.suspend``: the key, the tenant's gate entry, an audit record) and reads the
  audit trail's ``by_key`` index (human reinstatements); ``events:PutEvents`` on the bus.
* **Refusals** (``functions.detector.handler.refusals_handler``): a subscription on the
  API's access logs, filtered to 401/403, feeding the stuffing signal.
* **Revoke function** (``RevokeFunctionName``) and the managed policy
  (``ResponderPolicyArn``) granting only ``lambda:InvokeFunction`` on it: attach it to a
  responder's role or group.
* **Leak webhook** (``POST /webhooks/github/secret-scanning``): served by its own function
  (``route_functions`` for infra/api.py); it fetches GitHub's public keys over the internet,
  authenticated with the GitHub token an operator puts in ``GitHubTokenSecretArn`` (JSON
  ``{"token": ...}``; empty: unauthenticated), and remembers processed reports in one item of
  the detector's table (``webhook#reports``: replays are acknowledged, not redone).
"""

from __future__ import annotations

from typing import Final

from aws_cdk import CfnOutput, Duration
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_logs_destinations as log_destinations
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from constructs import Construct

from functions.common.config import TABLE_ENV
from functions.common.routes import HANDLERS
from functions.detector.config import ENV_HOLD
from functions.detector.stream import (
    DETECTOR_HANDLER,
    DETECTOR_STREAM,
    REFUSALS_FILTER,
    REFUSALS_HANDLER,
)
from functions.respond.config import ENV_KEYS_URL, GITHUB_KEYS_URL
from functions.respond.events import DETAIL_TYPES, ENV_EVENT_BUS, SOURCE
from functions.webhook.config import ENV_TOKEN_SECRET
from infra.functions import Functions, FunctionSpec
from infra.nag import acknowledge
from infra.settings import Settings
from infra.streams import stream_consumer

REVOKE_HANDLER: Final = "functions.revoke.handler.handler"
ITERATOR_AGE_ALARM_MS: Final = 2 * 60 * 1000  # detection is about minutes
_STREAM_READ: Final = (
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
)
# What KeyService.revoke / .suspend and the exposure report do, per table.
_REVOKE_TABLES: Final = {
    "keys": ("dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"),
    "secrets": ("dynamodb:GetItem",),
    "tenants": ("dynamodb:GetItem",),
    "gate": ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"),
    "audit": ("dynamodb:PutItem",),
}


class Detection(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        functions: Functions,
    ) -> None:
        super().__init__(scope, construct_id)
        usage = functions.tables.tables["usage"]
        if usage.table_stream_arn is None:
            raise ValueError("the usage table needs its stream (functions.common.models.TABLES)")

        self.bus = events.EventBus(self, "Bus", event_bus_name=f"{settings.stack_name}-events")
        publish = iam.PolicyStatement(
            actions=["events:PutEvents"], resources=[self.bus.event_bus_arn]
        )
        bus_env = {ENV_EVENT_BUS: self.bus.event_bus_name}

        # -- the detector and its mapping -------------------------------------------------
        self.detector = functions.add(
            FunctionSpec(
                "Detector",
                DETECTOR_HANDLER,
                service="detector",
                description="Tollgate: spike detector on the usage stream (suspends keys)",
                tables={
                    "detector": ("dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem"),
                    "plans": ("dynamodb:GetItem",),
                    "keys": ("dynamodb:GetItem", "dynamodb:UpdateItem"),
                    "gate": ("dynamodb:Query", "dynamodb:UpdateItem"),  # suspend + cascade
                    "audit": ("dynamodb:PutItem", "dynamodb:Query"),
                },
                statements=[
                    iam.PolicyStatement(
                        actions=list(_STREAM_READ), resources=[usage.table_stream_arn]
                    ),
                    publish,
                ],
                # The usage table's name too: the handler ignores any other table's stream.
                environment={**bus_env, ENV_HOLD: "720", TABLE_ENV["usage"]: usage.table_name},
                memory_size=512,
                timeout=Duration.seconds(60),
            )
        )
        consumer = stream_consumer(
            self,
            "Detector",
            function=self.detector,
            stream_arn=usage.table_stream_arn,
            settings=DETECTOR_STREAM,
            what="spike detector",
            iterator_age_alarm_ms=ITERATOR_AGE_ALARM_MS,
            lag_means="suspensions come late.",
            given_up_means="those events were not checked. See docs/runbook.md.",
        )
        self.failures, self.mapping, self.alarms = (
            consumer.failures,
            consumer.mapping,
            consumer.alarms,
        )
        self.refusals = functions.add(
            FunctionSpec(
                "DetectorRefusals",
                REFUSALS_HANDLER,
                service="detector-refusals",
                description="Tollgate: refused requests (access logs) -> stuffing sources",
                tables={
                    "detector": ("dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem")
                },
                statements=[publish],
                environment=bus_env,
                timeout=Duration.seconds(30),
            )
        )

        # -- responders --------------------------------------------------------------------
        self.revoke = functions.add(
            FunctionSpec(
                "Revoke",
                REVOKE_HANDLER,
                service="responder",
                description="Tollgate: revoke keys (responders invoke it) + exposure summary",
                tables={**_REVOKE_TABLES, "usage": ("dynamodb:Query",)},
                statements=[publish],
                environment=bus_env,
                timeout=Duration.seconds(60),
            )
        )
        self.github_token = secretsmanager.Secret(
            self,
            "GitHubTokenSecret",
            description=(
                "Tollgate: a GitHub token for the leak webhook's key list fetch, JSON "
                '{"token": "..."}; empty: unauthenticated. See docs/runbook.md.'
            ),
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template='{"token": ""}',  # noqa: S106 - an empty template
                generate_string_key="unused",
                exclude_punctuation=True,
            ),
            removal_policy=settings.removal_policy,
        )
        acknowledge(
            self.github_token,
            "AwsSolutions-SMG4",
            "The secret holds a token issued by GitHub; only GitHub can mint a new one, so a "
            "rotation Lambda cannot rotate it. Operators rotate it at GitHub and store it with "
            "put-secret-value (docs/runbook.md).",
        )
        self.webhook = functions.add(
            FunctionSpec(
                "LeakWebhook",
                HANDLERS["webhook"],
                service="webhook",
                description="Tollgate: GitHub secret scanning reports -> revocation",
                # + its memory of processed reports (one item of the detector's table)
                tables={**_REVOKE_TABLES, "detector": ("dynamodb:GetItem", "dynamodb:PutItem")},
                statements=[
                    publish,
                    iam.PolicyStatement(
                        actions=["secretsmanager:GetSecretValue"],
                        resources=[self.github_token.secret_arn],
                    ),
                ],
                environment={
                    **bus_env,
                    ENV_KEYS_URL: GITHUB_KEYS_URL,
                    ENV_TOKEN_SECRET: self.github_token.secret_arn,
                },
                timeout=Duration.seconds(15),
            )
        )
        self.route_functions: dict[str, lambda_.IFunction] = {"webhook": self.webhook}

        self.responder_policy = iam.ManagedPolicy(
            self,
            "ResponderPolicy",
            description="Tollgate responders: invoke the revoke function, nothing else",
            statements=[
                iam.PolicyStatement(
                    actions=["lambda:InvokeFunction"], resources=[self.revoke.function_arn]
                )
            ],
        )

        for output_id, value in (
            ("RevokeFunctionName", self.revoke.function_name),
            ("ResponderPolicyArn", self.responder_policy.managed_policy_arn),
            ("EventBusName", self.bus.event_bus_name),
            ("DetectorFunctionName", self.detector.function_name),
            ("DetectorDeadLetterQueueUrl", self.failures.queue_url),
            ("LeakWebhookFunctionName", self.webhook.function_name),
            ("GitHubTokenSecretArn", self.github_token.secret_arn),
        ):
            CfnOutput(self, output_id, value=value).override_logical_id(output_id)

    def connect(
        self, *, access_logs: logs.ILogGroup, alerts: sns.ITopic, alerts_key: kms.IKey
    ) -> None:
        """Wire what exists only once the API and observability do: the refusals
        subscription on the access logs, and events and alarms to the alerts topic."""
        logs.SubscriptionFilter(
            self,
            "RefusalsSubscription",
            log_group=access_logs,
            destination=log_destinations.LambdaDestination(self.refusals),
            filter_pattern=logs.FilterPattern.literal(REFUSALS_FILTER),
        )
        # EventBridge publishes with a role of its own (CDK grants it sns:Publish on this
        # topic and the topic key's data keys): no topic-policy grant to the EventBridge
        # service principal, which any account's rule could use.
        publisher = iam.Role(
            self,
            "AlertsPublisher",
            assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
            description="Tollgate: lets the alerts rule publish to the encrypted alerts topic",
        )
        acknowledge(
            publisher,
            "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
            "CDK's topic.grantPublish gives the rule's role the encrypted topic's key: "
            "kms:GenerateDataKey* (data keys with or without plaintext) on that one key ARN "
            "only, which is what publishing to an SSE-KMS topic requires.",
        )
        self.alerts_rule = events.Rule(
            self,
            "AlertsRule",
            description="Tollgate: suspensions, spike alerts, stuffing and revocations",
            event_bus=self.bus,
            event_pattern=events.EventPattern(source=[SOURCE], detail_type=list(DETAIL_TYPES)),
            targets=[
                targets.SnsTopic(
                    alerts,
                    role=publisher,
                    authorize_using_role=True,
                    retry_attempts=10,
                    max_event_age=Duration.hours(6),
                )
            ],
        )
        for alarm in self.alarms:
            alarm.add_alarm_action(cw_actions.SnsAction(alerts))
