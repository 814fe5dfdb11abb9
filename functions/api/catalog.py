"""The models a key may use (``GET /v1/models``, ``GET /v1/models/{model}``) and what each
model may be asked for (the per-model ``max_tokens`` cap).

**Per-model cap.** A call must finish inside the function's time limit (15 minutes through
API Gateway's streaming integration; ``TOLLGATE_MODEL_TIMEOUT_S`` for the model itself), or
the client gets a cut answer and is billed the reservation's upper bound. So a model's
largest ``max_tokens`` is the smallest of: its own output limit, what it produces in the
time limit at the slowest speed we plan for (:attr:`ModelLimits.min_tokens_per_s`), and the
operator's ``TOLLGATE_MAX_TOKENS_CAP``. A request asking for more is a 400 naming the cap;
a request that names none gets ``TOLLGATE_DEFAULT_MAX_TOKENS``, within the cap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from functions.api import responses
from functions.api.caller import Caller
from functions.api.errors import ModelNotFound
from functions.api.providers import ECHO_MODEL
from functions.api.services import Services
from functions.api.usage import UsageRecorder
from functions.pricing.catalogue import UNKNOWN


@dataclass(frozen=True)
class ModelLimits:
    max_output_tokens: int | None  # the model's own limit (None: none known)
    min_tokens_per_s: float | None  # the slowest generation we plan for (None: instant)


# First match wins (the id as the client sends it). 20 tokens/s is a floor for hosted chat
# models under load (typical figures are 50-150/s); at 870 s it allows 17,400 tokens.
MODEL_LIMITS: Final[tuple[tuple[re.Pattern[str], ModelLimits], ...]] = (
    (re.compile(rf"^{re.escape(ECHO_MODEL)}$"), ModelLimits(None, None)),
    (re.compile(r"(^|[.:])anthropic\.claude-3-haiku"), ModelLimits(4096, 20.0)),
    (re.compile(r"(^|[.:])anthropic\.claude-3-"), ModelLimits(4096, 20.0)),
    (re.compile(r"(^|[.:])meta\.llama3"), ModelLimits(2048, 20.0)),
    (re.compile(r".*"), ModelLimits(None, 20.0)),
)


def limits_for(model_id: str) -> ModelLimits:
    return next(limit for pattern, limit in MODEL_LIMITS if pattern.search(model_id))


def max_tokens_cap(model_id: str, operator_cap: int, time_limit_s: float) -> int:
    """The largest ``max_tokens`` a request for ``model_id`` may ask for (at least 1)."""
    limit = limits_for(model_id)
    caps = [operator_cap]
    if limit.max_output_tokens is not None:
        caps.append(limit.max_output_tokens)
    if limit.min_tokens_per_s is not None:
        caps.append(int(limit.min_tokens_per_s * time_limit_s))
    return max(1, min(caps))


def _models(services: Services, caller: Caller, usage: UsageRecorder) -> tuple[str, ...]:
    if caller.is_test:
        return (ECHO_MODEL,)
    plan = services.plans.get(caller.plan)
    usage.plan = plan.name
    return plan.models_for(caller.environment)


def list_models(services: Services, caller: Caller, operation: str) -> dict[str, Any]:
    """tollgate-echo for a test key; tollgate-echo and the plan's routable models for a live
    key (functions.api.plans.PlanView.models_for)."""
    with UsageRecorder(services.store, caller, operation) as usage:
        models = _models(services, caller, usage)
        usage.ok()
    return responses.model_list(models)


def get_model(services: Services, caller: Caller, model_id: str, operation: str) -> dict[str, Any]:
    """One model this key may use; 404 ``model_not_found`` for any other (existing or not:
    a key learns nothing about models it may not use)."""
    with UsageRecorder(services.store, caller, operation, model=UNKNOWN) as usage:
        if model_id not in _models(services, caller, usage):  # not billable: stays unknown
            raise ModelNotFound(
                f"The model '{model_id[:200]}' does not exist or you do not have access to it.",
                param="model",
            )
        usage.model = model_id
        usage.ok()
    return responses.model_object(model_id)
