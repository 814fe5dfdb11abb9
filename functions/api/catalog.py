"""``GET /v1/models``: the models this key may use (and nothing else)."""

from __future__ import annotations

from typing import Any

from functions.api import responses
from functions.api.caller import Caller
from functions.api.providers import ECHO_MODEL
from functions.api.services import Services
from functions.api.usage import UsageRecorder


def list_models(services: Services, caller: Caller, operation: str) -> dict[str, Any]:
    """tollgate-echo for a test key; tollgate-echo and the plan's routable models for a live
    key (functions.api.plans.PlanView.models_for)."""
    with UsageRecorder(services.store, caller, operation) as usage:
        if caller.is_test:
            models: tuple[str, ...] = (ECHO_MODEL,)
        else:
            plan = services.plans.get(caller.plan)
            usage.plan = plan.name
            models = plan.models_for(caller.environment)
        usage.ok()
    return responses.model_list(models)
