"""``POST /v1/chat/completions``: entitlement, reserve, model call, usage event, settle.

Order of events for one request (each DynamoDB step is one round trip):

1. the body was validated by the handler (400 writes nothing);
2. a test key asking for anything but tollgate-echo, or a model the plan does not list, is
   refused (403 / 404) with an error event; no reservation, no provider;
3. reserve ``prompt upper bound + max_tokens`` (:mod:`.budget`); 429 if it cannot fit;
4. call the provider with ``max_tokens`` = the allowance reserved;
5. put the usage event (the commit point: ``attribute_not_exists(request_id)``);
6. settle the reservation to the actual tokens, or release it entirely if the model failed
   or if step 5 found this request id recorded already (a redelivery).
"""

from __future__ import annotations

from dataclasses import dataclass

from functions.api.caller import Caller
from functions.api.errors import InvalidRequest, ModelNotFound, TestKeyModel
from functions.api.plans import PlanView
from functions.api.providers import ECHO_MODEL, ChatMessage, Completion, ModelCall, Route, route
from functions.api.schemas import ChatRequest
from functions.api.services import Services
from functions.api.usage import UsageRecorder, cost_micros

OPERATION = "chat.completions"


@dataclass(frozen=True)
class ChatResult:
    id: str
    created: int
    model: str
    completion: Completion


def forbid_for_test_key(caller: Caller, model_id: str) -> None:
    """Test keys only ever reach tollgate-echo (checked before anything is read)."""
    if caller.is_test and model_id != ECHO_MODEL:
        raise TestKeyModel(
            f"Test keys can only use the model {ECHO_MODEL}; use a live key for '{model_id}'.",
            param="model",
        )


def select_model(caller: Caller, plan: PlanView, model_id: str) -> Route:
    forbid_for_test_key(caller, model_id)
    target = route(model_id) if model_id in plan.models_for(caller.environment) else None
    if target is None:
        raise ModelNotFound(
            f"The model '{model_id}' does not exist or you do not have access to it.",
            param="model",
        )
    return target


def check_limits(request: ChatRequest, services: Services) -> None:
    """Body rules that depend on configuration (still a 400: nothing recorded)."""
    cap = services.settings.max_tokens_cap
    wanted = request.requested_max_tokens
    if wanted is not None and wanted > cap:
        raise InvalidRequest(f"max_tokens must be at most {cap}.", param="max_tokens")


def complete(
    services: Services, caller: Caller, request: ChatRequest, *, timeout_s: float
) -> ChatResult:
    check_limits(request, services)
    messages = tuple(ChatMessage(m.role, m.text) for m in request.messages)
    with UsageRecorder(services.store, caller, OPERATION, model=request.model) as usage:
        forbid_for_test_key(caller, request.model)
        plan = services.plans.get(caller.plan)
        usage.plan = plan.name
        target = select_model(caller, plan, request.model)
        provider = services.providers.get(target.kind)
        wanted = request.requested_max_tokens
        reservation = services.budget.reserve(
            tenant_id=caller.tenant_id,
            key_id=caller.key_id,
            window=caller.window(),
            prompt_tokens=provider.prompt_upper_bound(messages),
            max_tokens=wanted or services.settings.default_max_tokens,
            flexible=wanted is None,
        )
        call = ModelCall(
            model=target.model,
            messages=messages,
            max_tokens=reservation.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            stop=request.stops,
            timeout_s=timeout_s,
        )
        try:
            completion = provider.complete(call)
        except Exception as exc:
            usage.fail(exc)
            usage.write()
            services.budget.settle(reservation, 0)
            raise
        usage.ok(
            completion.prompt_tokens,
            completion.completion_tokens,
            cost_micros(
                completion.prompt_tokens,
                completion.completion_tokens,
                plan.price_prompt_micros_per_1k,
                plan.price_completion_micros_per_1k,
            ),
        )
        outcome = usage.write()
        # A redelivered request id is recorded already: hand back everything reserved here.
        services.budget.settle(
            reservation, 0 if outcome == "duplicate" else completion.total_tokens
        )
    return ChatResult(
        id=f"chatcmpl-{caller.request_id}",
        created=caller.request_time_ms // 1000,
        model=request.model,
        completion=completion,
    )
