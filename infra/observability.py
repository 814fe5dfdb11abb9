"""Alarms, the alerts topic and the dashboard.

Every alarm goes to one SNS topic (``AlertsTopicArn`` output; subscribe an e-mail with the
context ``alert_email``, or anything else after deploy). Build this construct after all the
others: it watches every function :class:`infra.functions.Functions` has built and shows the
state of every alarm in the stack.

* **Functions**: each gets alarms on errors and throttles, an alarm on p99 duration when its
  spec sets ``p99_alarm_ms``, and a dashboard row. The authorizer's error alarm leaves out
  its 401s: API Gateway answers 401 only when the authorizer *raises* ``Unauthorized``, which
  Lambda counts as an error, so a plain ``Errors`` alarm would page on every stray key.
* **Tollgate's own metrics** (Powertools EMF, namespace :data:`METRICS_NAMESPACE`): alarms on
  the fail-closed path (``AuthorizerDependencyFailure``), on any key suspension
  (``KeySuspended``), and on the breaches of an invariant the code can only report:
  ``UsageEventNotWritten`` (an admitted request without its usage event), ``SettleFailed``
  (a token reservation left counted), ``RevokeFailed`` (a responder's revocation did not
  complete) and ``EventNotPublished``. These alarms and the dashboard read the metrics with
  CloudWatch Metrics Insights (``SELECT SUM(m) FROM "Tollgate"``), which sums a metric over
  every dimension set it was emitted with: Powertools writes all the metrics of one
  invocation with the same dimensions, so e.g. ``KeySuspended`` carries the detector's
  ``signal`` dimension and an alarm on ``{service}`` alone would never see it.
* **Dashboard** (named after the stack): the state of every alarm, API traffic and latency,
  authorizer decisions by reason, tokens and spend, usage-event integrity, suspensions and
  findings, revocations, stream consumers' iterator age, then one row per function.

The metrics namespace is shared by every stack in an account and region (the functions
write to ``Tollgate``): stacks deployed side by side see each other's custom metrics on
their dashboards and alarms. Production runs one stack per account (docs/operations.md).
"""

from __future__ import annotations

import re
from typing import Final

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from functions.authorizer import logic as authorizer_logic
from functions.common import observability
from infra.api import AUTHORIZER_HANDLER
from infra.functions import Functions
from infra.settings import Settings

# What functions/common/observability.py's Metrics writes. Its ``service`` dimension is each
# function's own (FunctionSpec.service_name): an alarm on one function's metric by dimension
# names that function's service.
METRICS_NAMESPACE: Final = observability.METRICS_NAMESPACE

# Custom metrics whose every data point is an alert: (metric, alarm id, description).
ALERT_ON_ANY: Final = (
    (
        "AuthorizerDependencyFailure",
        "AuthorizerFailClosed",
        "The authorizer could not reach DynamoDB and refused requests with 503 (fail "
        "closed). Check DynamoDB's health and the authorizer's logs.",
    ),
    (
        "KeySuspended",
        "KeySuspended",
        "The spike detector suspended a key. The tollgate.key.suspended event on the alerts "
        "topic names it; see docs/runbook.md to review and reinstate.",
    ),
    (
        "UsageEventNotWritten",
        "UsageEventNotWritten",
        "An admitted request's usage event could not be written (invariant 4): every field "
        "of it is in the Api function's logs ('usage event not written'); put it back in the "
        "usage table before the month's statements run (docs/operations.md).",
    ),
    (
        "SettleFailed",
        "SettleFailed",
        "A token reservation could not be settled: the tenant's counters over-count until "
        "the month rolls over (never under-count).",
    ),
    (
        "RevokeFailed",
        "RevokeFailed",
        "A revocation did not complete. Run it again: revoking is idempotent.",
    ),
    (
        "EventNotPublished",
        "EventNotPublished",
        "A suspension's event could not be published to the event bus: this alarm is then "
        "the only notice. Read the detector's logs.",
    ),
    (  # threshold notices (issue 14)
        "NoticesDeadLettered",
        "NoticeDeadLettered",
        "A usage.threshold notice could not be delivered to a tenant's webhook (every "
        "attempt failed). List them: tollgate tenants notices TENANT --failed; after the "
        "receiver is fixed: tollgate tenants redrive-notices TENANT (docs/billing.md).",
    ),
)

_MINUTE = Duration.minutes(1)
_IDENTIFIER: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_FIVE_MINUTES = Duration.minutes(5)


def unauthorized_reasons() -> tuple[str, ...]:
    """The ``reason`` values of the authorizer's 401 decisions (it raises for those)."""
    return tuple(
        sorted(
            {
                value.code
                for value in vars(authorizer_logic).values()
                if isinstance(value, authorizer_logic.Decision) and value.kind == "unauthorized"
            }
        )
    )


def insights(
    metric: str,
    *,
    label: str | None = None,
    group_by: str | None = None,
    period: Duration = _MINUTE,
) -> cw.MathExpression:
    """The sum of one of Tollgate's metrics over all its dimension sets (Metrics Insights)."""
    for name in (metric, group_by or "x"):
        if not _IDENTIFIER.fullmatch(name):
            raise ValueError(f"not a metric or dimension name: {name!r}")
    query = f'SELECT SUM({metric}) FROM "{METRICS_NAMESPACE}"'  # noqa: S608 - names checked above
    if group_by:
        query += f" GROUP BY {group_by}"
        label = ""  # each series keeps its group's name (CDK would label all with the query)
    return cw.MathExpression(expression=query, using_metrics={}, label=label, period=period)


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

        # -- alarms first: the dashboard's first row shows the state of all of them ----------
        self._alarm(
            "Api5xx",
            api.metric_server_error(period=_FIVE_MINUTES, statistic="Sum"),
            threshold=5,
            description="The API answered 5xx five times or more in 5 minutes (includes "
            "authorizer failures, which refuse requests: fail closed).",
        )
        for metric, alarm_id, description in ALERT_ON_ANY:
            self._alarm(
                alarm_id, insights(metric, label=metric), threshold=1, description=description
            )
        function_rows: list[list[cw.IWidget]] = []
        for spec in functions.specs:
            function = functions.functions[spec.name]
            self._function_alarms(
                function,
                name=spec.name,
                p99_ms=spec.p99_alarm_ms,
                authorizer_service=spec.service_name
                if spec.handler == AUTHORIZER_HANDLER
                else None,
            )
            function_rows.append(self._function_widgets(function, name=spec.name))

        # -- the dashboard -------------------------------------------------------------------
        stack_alarms = [c for c in Stack.of(self).node.find_all() if isinstance(c, cw.Alarm)]
        self.dashboard.add_widgets(
            cw.AlarmStatusWidget(
                title="Alarms", alarms=stack_alarms, width=24, height=2 + len(stack_alarms) // 6
            )
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
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Authorizer decisions by reason (per minute)",
                left=[insights("AuthorizerDecision", group_by="reason")],
                width=12,
            ),
            cw.GraphWidget(
                title="Authorizer: fail-closed refusals (503) and over-limit answers (429)",
                left=[
                    insights("AuthorizerDependencyFailure", label="dependency failure (503)"),
                    insights("RefusedOverLimit", label="refused over limit (429)"),
                ],
                width=12,
            ),
        )
        spend = cw.MathExpression(
            expression="micro / 1000000",
            using_metrics={"micro": insights("SpendMicroUsd")},
            label="spend (USD, live keys)",
            period=_MINUTE,
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Tokens (prompt + completion) per minute",
                left=[insights("Tokens", label="tokens")],
                width=12,
            ),
            cw.GraphWidget(title="Spend per minute (USD)", left=[spend], width=12),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Usage events: written, duplicates, not written; budget overruns",
                left=[
                    insights("UsageEvents", label="written"),
                    insights("DuplicateDelivery", label="duplicate delivery"),
                ],
                right=[
                    insights("UsageEventNotWritten", label="NOT written"),
                    insights("BudgetOverrun", label="budget overrun"),
                    insights("SettleFailed", label="settle failed"),
                ],
                width=12,
            ),
            cw.GraphWidget(
                title="Spike detector: suspensions, alerts, findings by signal",
                left=[
                    insights("KeySuspended", label="keys suspended"),
                    insights("SpikeAlert", label="spike alerts"),
                    insights("StuffingSourceFlagged", label="stuffing sources"),
                    insights("SuspensionHeld", label="held (reinstated by a human)"),
                ],
                right=[insights("DetectorFinding", group_by="signal")],
                width=12,
            ),
        )
        last_row: list[cw.IWidget] = [
            cw.GraphWidget(
                title="Revocations: by responders and by the leak webhook",
                left=[
                    insights("KeysRevoked", label="revoked (revoke function)"),
                    insights("LeakedKeysRevoked", label="revoked (leak reports)"),
                    insights("LeakedKeysReported", label="tokens reported by GitHub"),
                ],
                right=[
                    insights("RevokeFailed", label="revocations failed"),
                    insights("LeakReportRefused", label="leak reports refused"),
                ],
                width=12,
            )
        ]
        iterator_ages = [a.metric for a in stack_alarms if _metric_name(a) == "IteratorAge"]
        if iterator_ages:
            last_row.append(
                cw.GraphWidget(
                    title="Stream consumers: iterator age (max, ms)", left=iterator_ages, width=12
                )
            )
        self.dashboard.add_widgets(*last_row)
        for row in function_rows:
            self.dashboard.add_widgets(*row)

    def watch_function(self, function: lambda_.Function, *, name: str, p99_ms: int | None) -> None:
        """Alarms on errors, throttles and (optionally) p99 duration, plus a dashboard row,
        for a function built after this construct."""
        self._function_alarms(function, name=name, p99_ms=p99_ms, authorizer_service=None)
        self.dashboard.add_widgets(*self._function_widgets(function, name=name))

    def _function_alarms(
        self,
        function: lambda_.Function,
        *,
        name: str,
        p99_ms: int | None,
        authorizer_service: str | None,
    ) -> None:
        """``authorizer_service``: the authorizer's service name when ``function`` is the
        authorizer (its error alarm subtracts the 401 decisions it reports under it)."""
        if authorizer_service is not None:
            reasons = unauthorized_reasons()
            refused = {
                f"u{i}": cw.Metric(
                    namespace=METRICS_NAMESPACE,
                    metric_name="AuthorizerDecision",
                    dimensions_map={"service": authorizer_service, "reason": reason},
                    statistic="Sum",
                    period=_FIVE_MINUTES,
                )
                for i, reason in enumerate(reasons)
            }
            errors: cw.IMetric = cw.MathExpression(
                expression="FILL(errors, 0) - " + " - ".join(f"FILL({k}, 0)" for k in refused),
                using_metrics={
                    "errors": function.metric_errors(period=_FIVE_MINUTES, statistic="Sum"),
                    **refused,
                },
                label="errors other than 401",
                period=_FIVE_MINUTES,
            )
            self._alarm(
                f"{name}Errors",
                errors,
                threshold=5,
                description=f"The {name} function failed five times or more in 5 minutes, "
                f"not counting its 401 answers ({', '.join(reasons)}), which it must raise.",
            )
        else:
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
        if p99_ms is not None:
            self._alarm(
                f"{name}LatencyP99",
                function.metric_duration(period=_MINUTE, statistic="p99"),
                threshold=p99_ms,
                evaluation_periods=3,
                description=f"The {name} function's p99 duration was over {p99_ms} ms "
                "for 3 minutes in a row.",
            )

    @staticmethod
    def _function_widgets(function: lambda_.Function, *, name: str) -> list[cw.IWidget]:
        return [
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
                left=[
                    function.metric_duration(period=_MINUTE, statistic="p50"),
                    function.metric_duration(period=_MINUTE, statistic="p99"),
                ],
                width=12,
            ),
        ]

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


def _metric_name(alarm: cw.Alarm) -> str | None:
    cfn = alarm.node.default_child
    return cfn.metric_name if isinstance(cfn, cw.CfnAlarm) else None
