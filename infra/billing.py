"""The hourly billing export (functions/billing/): its function, schedule and secret.

* **Function** ``BillingExport`` (``functions.billing.handler``): reads the billing table
  (customers and ledger: GetItem, PutItem, Query, Scan), the rollups (Query) and the tenant
  list (Scan of the base table only); one run at a time (reserved concurrency 1), 10
  minutes at most.
* **Schedule**: an EventBridge rule at minute 45 of every hour (an hour is due 30 minutes
  after it closes: functions/billing/logic.py), enabled only when the ``billing_destinations``
  context names a destination (infra/settings.py); two retries within the hour.
* **Stripe** (``stripe`` in the destinations): a Secrets Manager secret, created empty,
  into which the operator puts the Stripe secret key (docs/deploy.md); the function may
  only ``GetSecretValue`` on it. Its ARN is the output ``StripeSecretArn``.
* **AWS Marketplace** (``aws-marketplace``): ``aws-marketplace:BatchMeterUsage``, which
  supports no resource-level permission (``*``, acknowledged below). The stack must be
  deployed in the account that owns the Marketplace product.
"""

from __future__ import annotations

from typing import Final

from aws_cdk import CfnOutput, Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from functions.billing.config import ENV_DESTINATIONS, ENV_STRIPE_SECRET_ARN
from functions.billing.logic import MARKETPLACE, STRIPE
from functions.common.config import TABLE_ENV
from infra.functions import Functions, FunctionSpec
from infra.nag import acknowledge
from infra.settings import Settings

HANDLER: Final = "functions.billing.handler.handler"


class BillingExport(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, settings: Settings, functions: Functions
    ) -> None:
        super().__init__(scope, construct_id)
        destinations = settings.billing_destinations
        tenants = functions.tables.tables["tenants"]
        statements: list[iam.PolicyStatement] = [
            # The tenant list (unmapped tenants are reported): the base table only.
            iam.PolicyStatement(actions=["dynamodb:Scan"], resources=[tenants.table_arn]),
        ]
        environment = {
            TABLE_ENV["tenants"]: tenants.table_name,
            ENV_DESTINATIONS: ",".join(destinations),
        }
        self.secret: secretsmanager.Secret | None = None
        if STRIPE in destinations:
            self.secret = secretsmanager.Secret(
                self,
                "StripeSecret",
                description="Tollgate: the Stripe secret key of the billing export (put it in)",
                removal_policy=settings.removal_policy,
            )
            acknowledge(
                self.secret,
                "AwsSolutions-SMG4",
                "The value is a Stripe API key, issued by Stripe: it is rolled in the Stripe "
                "dashboard and the new key put here (docs/deploy.md); a rotation Lambda "
                "cannot mint one.",
            )
            statements.append(
                iam.PolicyStatement(
                    actions=["secretsmanager:GetSecretValue"], resources=[self.secret.secret_arn]
                )
            )
            environment[ENV_STRIPE_SECRET_ARN] = self.secret.secret_arn
        if MARKETPLACE in destinations:
            statements.append(
                iam.PolicyStatement(actions=["aws-marketplace:BatchMeterUsage"], resources=["*"])
            )
        self.function = functions.add(
            FunctionSpec(
                "BillingExport",
                HANDLER,
                service="billing",
                description="Tollgate: exports billable usage per tenant-hour, exactly once",
                tables={
                    "billing": (
                        "dynamodb:GetItem",
                        "dynamodb:PutItem",
                        "dynamodb:Query",
                        "dynamodb:Scan",
                    ),
                    "rollups": ("dynamodb:Query",),
                },
                statements=statements,
                environment=environment,
                memory_size=512,
                timeout=Duration.minutes(10),
                reserved_concurrency=1,
            )
        )
        if MARKETPLACE in destinations:
            role = self.function.role
            assert role is not None
            acknowledge(
                role,
                "AwsSolutions-IAM5[Resource::*]",
                "aws-marketplace:BatchMeterUsage has no resource-level permissions; the "
                "product is named in each call (licence ARN) and this role may do nothing "
                "else in AWS Marketplace.",
            )
        self.schedule = events.Rule(
            self,
            "HourlyExport",
            description="Tollgate: billing export of the closed hours, hourly at minute 45",
            schedule=events.Schedule.cron(minute="45"),
            enabled=bool(destinations),
            targets=[
                targets.LambdaFunction(
                    self.function, retry_attempts=2, max_event_age=Duration.hours(1)
                )
            ],
        )
        CfnOutput(
            self, "BillingExportFunctionName", value=self.function.function_name
        ).override_logical_id("BillingExportFunctionName")
        if self.secret is not None:
            CfnOutput(self, "StripeSecretArn", value=self.secret.secret_arn).override_logical_id(
                "StripeSecretArn"
            )
