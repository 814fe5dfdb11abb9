"""The Tollgate stack: composes one construct per concern and nothing else."""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack, Tags
from constructs import Construct

from infra.api import Api
from infra.billing import BillingExport
from infra.detect import Detection
from infra.functions import Functions
from infra.notices import Notices
from infra.observability import Observability
from infra.settings import Settings
from infra.tables import Tables
from infra.trust import TokenExchange
from infra.usage import UsagePipeline
from infra.waf import Waf


class TollgateStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, settings: Settings, **kwargs: Any
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            stack_name=settings.stack_name,
            description=f"Tollgate ({settings.env_name}): governed, metered access to AI models",
            termination_protection=settings.prod,
            **kwargs,
        )
        Tags.of(self).add("app", "tollgate")
        Tags.of(self).add("env", settings.env_name)

        self.tables = Tables(self, "Tables", settings=settings)
        self.functions = Functions(self, "Functions", settings=settings, tables=self.tables)
        self.detection = Detection(self, "Detection", settings=settings, functions=self.functions)
        self.token_exchange = TokenExchange(self, "TokenExchange", functions=self.functions)
        self.api = Api(
            self,
            "Api",
            settings=settings,
            functions=self.functions,
            route_functions={
                **self.detection.route_functions,
                **self.token_exchange.route_functions,
            },
        )
        self.usage = UsagePipeline(self, "Usage", settings=settings, functions=self.functions)
        self.notices = Notices(self, "Notices", settings=settings, functions=self.functions)
        # billing export (issue 14 item 5)
        self.billing = BillingExport(self, "Billing", settings=settings, functions=self.functions)
        self.waf = Waf(
            self, "Waf", settings=settings, stage_arn=self.api.rest_api.deployment_stage.stage_arn
        )
        # Last: it watches every function the constructs above have built.
        self.observability = Observability(
            self,
            "Observability",
            settings=settings,
            api=self.api.rest_api,
            functions=self.functions,
        )
        self.usage.send_alarms_to(self.observability)
        self.notices.send_alarms_to(self.observability)
        self.detection.connect(
            access_logs=self.api.access_logs,
            alerts=self.observability.topic,
            alerts_key=self.observability.key,
        )
