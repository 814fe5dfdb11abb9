"""Alarms, the alerts topic and the dashboard.

Every alarm goes to one SNS topic (``AlertsTopicArn`` output; subscribe an e-mail with the
context ``alert_email``, or anything else after deploy). Every function built by
:class:`infra.functions.Functions` gets alarms on errors and throttles, an alarm on p99
duration when its spec sets ``p99_alarm_ms``, and a dashboard row; build this construct
after all the others.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra.functions import Functions
from infra.settings import Settings

_MINUTE = Duration.minutes(1)


class Observability(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        api: apigw.RestApi,
        functions: Functions,
    ) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "AlertsKey",
            description="Tollgate: encrypts the alerts topic",
            enable_key_rotation=True,
            removal_policy=settings.removal_policy,
            pending_window=settings.key_pending_window,
        )
        # CloudWatch alarms publish to an encrypted topic only if they may use its key.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" is this key
            )
        )
        self.topic = sns.Topic(
            self, "Alerts", display_name="Tollgate alerts", master_key=self.key, enforce_ssl=True
        )
        if settings.alert_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(settings.alert_email))
        CfnOutput(self, "AlertsTopicArn", value=self.topic.topic_arn).override_logical_id(
            "AlertsTopicArn"
        )

        self.dashboard = cw.Dashboard(
            self,
            "Dashboard",
            dashboard_name=settings.stack_name,
            default_interval=Duration.hours(3),
        )
        self.alarms: list[cw.Alarm] = []

        self._alarm(
            "Api5xx",
            api.metric_server_error(period=Duration.minutes(5), statistic="Sum"),
            threshold=5,
            description="The API answered 5xx five times or more in 5 minutes (includes "
            "authorizer failures, which refuse requests: fail closed).",
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="API requests and errors",
                left=[
                    api.metric_count(period=_MINUTE, statistic="Sum"),
                    api.metric_client_error(period=_MINUTE, statistic="Sum"),
                    api.metric_server_error(period=_MINUTE, statistic="Sum"),
                ],
                width=12,
            ),
            cw.GraphWidget(
                title="API latency (p50, p99)",
                left=[
                    api.metric_latency(period=_MINUTE, statistic="p50"),
                    api.metric_latency(period=_MINUTE, statistic="p99"),
                ],
                width=12,
            ),
        )
        for spec in functions.specs:
            self.watch_function(
                functions.functions[spec.name], name=spec.name, p99_ms=spec.p99_alarm_ms
            )

    def watch_function(self, function: lambda_.Function, *, name: str, p99_ms: int | None) -> None:
        """Alarms on errors, throttles and (optionally) p99 duration, plus a dashboard row."""
        self._alarm(
            f"{name}Errors",
            function.metric_errors(period=_MINUTE, statistic="Sum"),
            threshold=1,
            description=f"The {name} function raised an error.",
        )
        self._alarm(
            f"{name}Throttles",
            function.metric_throttles(period=_MINUTE, statistic="Sum"),
            threshold=1,
            description=f"The {name} function was throttled (concurrency exhausted).",
        )
        duration = function.metric_duration(period=_MINUTE, statistic="p99")
        if p99_ms is not None:
            self._alarm(
                f"{name}LatencyP99",
                duration,
                threshold=p99_ms,
                evaluation_periods=3,
                description=f"The {name} function's p99 duration was over {p99_ms} ms "
                "for 3 minutes in a row.",
            )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title=f"{name}: invocations, errors, throttles",
                left=[
                    function.metric_invocations(period=_MINUTE, statistic="Sum"),
                    function.metric_errors(period=_MINUTE, statistic="Sum"),
                    function.metric_throttles(period=_MINUTE, statistic="Sum"),
                ],
                width=12,
            ),
            cw.GraphWidget(
                title=f"{name}: duration (p50, p99)",
                left=[function.metric_duration(period=_MINUTE, statistic="p50"), duration],
                width=12,
            ),
        )

    def _alarm(
        self,
        name: str,
        metric: cw.IMetric,
        *,
        threshold: float,
        description: str,
        evaluation_periods: int = 1,
    ) -> cw.Alarm:
        alarm = cw.Alarm(
            self,
            name,
            metric=metric,
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
        self.alarms.append(alarm)
        return alarm
