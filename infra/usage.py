"""The usage pipeline: the stream aggregator, its failure queue and alarms, and statements.

* **Aggregator** (``functions.usage.handler``) on the usage table's stream. The mapping is
  built from ``functions.usage.stream.AGGREGATOR_STREAM``, the object the local pollers
  read too: INSERT-only filter, batch size and window, bisection, bounded retries,
  ``ReportBatchItemFailures``, parallelization 1, a tumbling window (so events carry the
  shard id the watermarks need) and an SQS on-failure queue (SSE-SQS, TLS only). Its role
  may ``UpdateItem`` the rollups table and read the usage stream (exact stream ARN; the
  mapping is declared directly rather than through ``DynamoEventSource``, whose grant
  includes ``dynamodb:ListStreams`` on ``*``). It also gets the usage table's name: the
  handler refuses events from any other stream.
* **Alarms**: iterator age (the aggregator falling behind) and the failure queue's depth
  (records given up on: rollups are short until they are replayed); wired to the alerts
  topic by :meth:`UsagePipeline.send_alarms_to` once observability exists.
* **Statements**: a bucket encrypted with its own KMS key (bucket key on), versioned, public
  access blocked, TLS only, access-logged to a log bucket; a function that writes last
  month's statement of every tenant, run by an EventBridge schedule on the 1st of each
  month at 06:00 UTC. The function may put objects only under ``statements/`` (granted in
  the bucket policy, to this role) and use the bucket's key only through S3.
* **Reservation sweep** (``functions.sweep.handler``), every 5 minutes: settles the
  reservations of Api invocations killed before settling (their markers on the gate table,
  ``functions/gate/reservations.py``) with an estimated usage event. It may Query and
  DeleteItem markers and GetItem / UpdateItem its cursor on the gate table, and PutItem
  usage events (conditional: never a duplicate); one run at a time (reserved concurrency 1).
"""

from __future__ import annotations

from typing import Final

from aws_cdk import Aws, CfnOutput, Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from functions.common.config import TABLE_ENV
from functions.statements.config import ENV_BUCKET, ENV_PREFIX
from functions.usage.config import ENV_WRITERS
from functions.usage.stream import AGGREGATOR_HANDLER, AGGREGATOR_STREAM
from infra.functions import Functions, FunctionSpec
from infra.nag import acknowledge
from infra.observability import Observability
from infra.settings import Settings
from infra.streams import stream_consumer

STATEMENTS_HANDLER: Final = "functions.statements.handler.handler"
SWEEP_HANDLER: Final = "functions.sweep.handler.handler"
SWEEP_EVERY: Final = Duration.minutes(5)
STATEMENTS_PREFIX: Final = "statements/"
ITERATOR_AGE_ALARM_MS: Final = 5 * 60 * 1000
_STREAM_READ: Final = (
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
)


class UsagePipeline(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        functions: Functions,
    ) -> None:
        super().__init__(scope, construct_id)
        tables = functions.tables
        usage, tenants = tables.tables["usage"], tables.tables["tenants"]
        if usage.table_stream_arn is None:
            raise ValueError("the usage table needs its stream (functions.common.models.TABLES)")

        # -- the aggregator and its mapping ------------------------------------------------
        self.aggregator = functions.add(
            FunctionSpec(
                "UsageAggregator",
                AGGREGATOR_HANDLER,
                service="usage",
                description="Tollgate: rolls usage events up, exactly once (stream consumer)",
                tables={"rollups": ("dynamodb:UpdateItem",)},
                statements=[
                    iam.PolicyStatement(
                        actions=list(_STREAM_READ), resources=[usage.table_stream_arn]
                    )
                ],
                # The handler refuses events of any other table's stream.
                environment={TABLE_ENV["usage"]: usage.table_name, ENV_WRITERS: "8"},
                memory_size=512,
                timeout=Duration.seconds(120),
            )
        )
        consumer = stream_consumer(
            self,
            "Aggregator",
            function=self.aggregator,
            stream_arn=usage.table_stream_arn,
            settings=AGGREGATOR_STREAM,
            what="usage aggregator",
            iterator_age_alarm_ms=ITERATOR_AGE_ALARM_MS,
            lag_means="rollups and statements lag (records expire after 24 h).",
            given_up_means="rollups are short until they are replayed. See docs/usage-pipeline.md.",
        )
        self.failures, self.mapping = consumer.failures, consumer.mapping

        # -- statements ----------------------------------------------------------------------
        self.statements_key = kms.Key(
            self,
            "StatementsKey",
            description="Tollgate: encrypts the monthly statements bucket",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
            pending_window=settings.key_pending_window,
        )
        self.access_logs = s3.Bucket(
            self,
            "StatementsAccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,  # log delivery supports only SSE-S3
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(400))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            self.access_logs,
            "AwsSolutions-S1",
            "This bucket receives the server access logs of the statements bucket; logging "
            "the log bucket itself would only log log deliveries, recursively.",
        )
        self.statements = s3.Bucket(
            self,
            "Statements",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.statements_key,
            bucket_key_enabled=True,
            versioned=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="statements/",
            removal_policy=RemovalPolicy.RETAIN,  # financial records outlive any stack
        )
        self.statements_function = functions.add(
            FunctionSpec(
                "Statements",
                STATEMENTS_HANDLER,
                service="statements",
                description="Tollgate: writes last month's statement of every tenant to S3",
                # BatchGetItem: the month's per-day totals for the HTML page's chart.
                tables={
                    "rollups": ("dynamodb:Query", "dynamodb:BatchGetItem"),
                    "plans": ("dynamodb:GetItem",),
                },
                statements=[
                    # The tenant list: a Scan of the base table only (through ``tables`` the
                    # builder would add the table's indexes, which this function never reads).
                    iam.PolicyStatement(actions=["dynamodb:Scan"], resources=[tenants.table_arn]),
                    iam.PolicyStatement(  # SSE-KMS puts need a data key, only through S3
                        actions=["kms:GenerateDataKey"],
                        resources=[self.statements_key.key_arn],
                        conditions={
                            "StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"}
                        },
                    ),
                ],
                environment={
                    TABLE_ENV["tenants"]: tenants.table_name,
                    ENV_BUCKET: self.statements.bucket_name,
                    ENV_PREFIX: STATEMENTS_PREFIX,
                },
                memory_size=512,
                timeout=Duration.minutes(5),
            )
        )
        role = self.statements_function.role
        assert role is not None
        # Object writes are granted by the bucket, for this role and this prefix only.
        self.statements.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ArnPrincipal(role.role_arn)],
                actions=["s3:PutObject"],
                resources=[self.statements.arn_for_objects(f"{STATEMENTS_PREFIX}*")],
            )
        )
        self.schedule = events.Rule(
            self,
            "MonthlyStatements",
            description="Tollgate: last month's statements, on the 1st at 06:00 UTC",
            schedule=events.Schedule.cron(minute="0", hour="6", day="1", month="*", year="*"),
            targets=[
                targets.LambdaFunction(
                    self.statements_function,
                    retry_attempts=2,
                    max_event_age=Duration.hours(6),
                )
            ],
        )

        # -- the orphaned-reservation sweep --------------------------------------------------
        self.sweep_function = functions.add(
            FunctionSpec(
                "ReservationSweep",
                SWEEP_HANDLER,
                service="sweep",
                description="Tollgate: settles reservations of killed Api calls (estimated)",
                tables={
                    # markers: Query and DeleteItem; the sweep's cursor: GetItem, UpdateItem
                    "gate": (
                        "dynamodb:Query",
                        "dynamodb:DeleteItem",
                        "dynamodb:GetItem",
                        "dynamodb:UpdateItem",
                    ),
                    "usage": ("dynamodb:PutItem",),
                },
                timeout=Duration.minutes(4),  # shorter than the schedule: runs never overlap
                reserved_concurrency=1,
            )
        )
        self.sweep_schedule = events.Rule(
            self,
            "ReservationSweepSchedule",
            description="Tollgate: settles orphaned token reservations, every 5 minutes",
            schedule=events.Schedule.rate(SWEEP_EVERY),
            targets=[targets.LambdaFunction(self.sweep_function, retry_attempts=0)],
        )

        self.alarms = consumer.alarms  # actions once the alerts topic exists

        for output_id, value in (
            ("UsageDeadLetterQueueUrl", self.failures.queue_url),
            ("StatementsBucketName", self.statements.bucket_name),
            ("UsageAggregatorFunctionName", self.aggregator.function_name),
            ("StatementsFunctionName", self.statements_function.function_name),
            ("ReservationSweepFunctionName", self.sweep_function.function_name),
        ):
            CfnOutput(self, output_id, value=value).override_logical_id(output_id)

    def send_alarms_to(self, observability: Observability) -> None:
        """Route this pipeline's alarms to the alerts topic and add a dashboard row."""
        for alarm in self.alarms:
            alarm.add_alarm_action(cw_actions.SnsAction(observability.topic))
        observability.dashboard.add_widgets(
            cw.GraphWidget(
                title="Usage aggregator: iterator age (max)",
                left=[self.alarms[0].metric],
                width=12,
            ),
            cw.GraphWidget(
                title="Usage aggregator: records given up on (on-failure queue)",
                left=[self.alarms[1].metric],
                width=12,
            ),
        )
