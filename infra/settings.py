"""Deployment settings, read once from CDK context (``cdk.json`` or ``-c key=value``).

Every knob that differs between a developer's dev stack and production lives here, so the
constructs take one typed object instead of reading context themselves.

==================== ================================================= ======================
context key          meaning                                           default
==================== ================================================= ======================
``env_name``         ``dev`` or ``prod``                               ``dev``
``stack_name``       CloudFormation stack name (one per developer)     ``Tollgate-<env_name>``
``stage_name``       API Gateway stage                                 ``prod``
``log_level``        ``LOG_LEVEL`` of every function                   ``INFO``
``bedrock_models``   foundation model ids the API may invoke (list,    Claude 3 Haiku
                     or a comma-separated string on the command line)
``waf_rate_limit``   requests per source IP per 5 minutes (WAF)        dev 1000, prod 2000
``alert_email``      e-mail subscribed to the alerts topic             none
``billing_destinations`` where the hourly billing export goes: ``stripe``,  none (schedule off)
                     ``aws-marketplace`` (list, or comma-separated)
==================== ================================================= ======================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_logs as logs
from constructs import Node

ENV_NAMES: Final = ("dev", "prod")
DEFAULT_BEDROCK_MODELS: Final = ("anthropic.claude-3-haiku-20240307-v1:0",)


@dataclass(frozen=True)
class Settings:
    env_name: str = "dev"
    stack_name: str = "Tollgate-dev"
    stage_name: str = "prod"
    log_level: str = "INFO"
    bedrock_models: tuple[str, ...] = DEFAULT_BEDROCK_MODELS
    waf_rate_limit: int = 1000
    alert_email: str | None = None
    # billing export (issue 14 item 5): destinations of the hourly export; none: schedule off
    billing_destinations: tuple[str, ...] = ()

    @property
    def prod(self) -> bool:
        return self.env_name == "prod"

    @property
    def removal_policy(self) -> RemovalPolicy:
        """Stateful resources survive a stack deletion in prod; dev stacks clean up."""
        return RemovalPolicy.RETAIN if self.prod else RemovalPolicy.DESTROY

    @property
    def deletion_protection(self) -> bool:
        return self.prod

    @property
    def log_retention(self) -> logs.RetentionDays:
        return logs.RetentionDays.THREE_MONTHS if self.prod else logs.RetentionDays.ONE_WEEK

    @property
    def key_pending_window(self) -> Duration:
        return Duration.days(30 if self.prod else 7)

    @classmethod
    def from_context(cls, node: Node) -> Settings:
        def get(key: str) -> Any:
            return node.try_get_context(key)

        env_name = str(get("env_name") or "dev")
        if env_name not in ENV_NAMES:
            raise ValueError(f"context env_name must be one of {ENV_NAMES}, not {env_name!r}")
        models = get("bedrock_models") or DEFAULT_BEDROCK_MODELS
        if isinstance(models, str):
            models = [m for m in (part.strip() for part in models.split(",")) if m]
        destinations = get("billing_destinations") or ()
        if isinstance(destinations, str):
            destinations = [d.strip() for d in destinations.split(",") if d.strip()]
        from functions.billing.logic import check_destination

        return cls(
            billing_destinations=tuple(check_destination(str(d)) for d in destinations),
            env_name=env_name,
            stack_name=str(get("stack_name") or f"Tollgate-{env_name}"),
            stage_name=str(get("stage_name") or "prod"),
            log_level=str(get("log_level") or "INFO").upper(),
            bedrock_models=tuple(str(m) for m in models),
            waf_rate_limit=int(get("waf_rate_limit") or (2000 if env_name == "prod" else 1000)),
            alert_email=str(get("alert_email")) if get("alert_email") else None,
        )
