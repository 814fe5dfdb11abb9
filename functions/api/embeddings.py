"""``POST /v1/embeddings``: one vector per input, counted as prompt tokens.

The model is routed like chat's (functions/api/providers/__init__.py) and the entitlement
rules are chat's (test keys: tollgate-echo only; a live key: the plan's models). Each
provider that makes embeddings implements
:class:`functions.api.providers.EmbeddingProvider`:

- ``tollgate-echo``: a deterministic unit-length vector per input
  (functions/api/providers/echo.py), tokens counted exactly;
- ``upstream:<model>``: the OpenAI-compatible upstream's ``/embeddings``
  (functions/api/providers/upstream.py);
- a Bedrock id: ``InvokeModel`` on an Amazon Titan text embeddings model, one call per
  input (functions/api/providers/bedrock.py).

A model its provider cannot embed with (a Bedrock chat model, say) is a 400
``model_not_supported`` with an error event, before anything is reserved. Then, as for
chat: reserve the provider's prompt upper bound for the inputs; call; write one usage event
with the provider's reported prompt tokens and settle the reservation to them. A provider
that refused before running (rejected, unavailable, unreachable) releases the reservation;
any other failure (a timeout, an unreadable answer) or an answer without usage bills the
upper bound, marked ``estimated``: never less than the provider may have billed.
"""

from __future__ import annotations

from typing import Any, Final

from functions.api import responses
from functions.api.caller import Caller
from functions.api.chat import NOT_RUN, forbid_for_test_key, marker, select_model
from functions.api.errors import ModelNotSupported
from functions.api.providers import EmbeddingCall, EmbeddingProvider
from functions.api.providers.echo import DEFAULT_DIMENSIONS, echo_vector
from functions.api.schemas import EmbeddingsRequest
from functions.api.services import Services
from functions.api.usage import UsageRecorder, cost_micros

OPERATION: Final = "embeddings.create"

__all__ = ["DEFAULT_DIMENSIONS", "OPERATION", "ModelNotSupported", "create", "echo_vector"]


def create(
    services: Services, caller: Caller, request: EmbeddingsRequest, *, timeout_s: float = 25.0
) -> dict[str, Any]:
    inputs = tuple(request.inputs)
    with UsageRecorder(services.store, caller, OPERATION, model=request.model) as usage:
        forbid_for_test_key(caller, request.model)
        plan = services.plans.get(caller.plan)
        usage.plan = plan.name
        target = select_model(caller, plan, request.model)
        provider = services.providers.get(target.kind)
        if not isinstance(provider, EmbeddingProvider):
            raise ModelNotSupported(
                f"The model '{request.model}' cannot make embeddings here.", param="model"
            )
        provider.check_embedding_model(target.model)
        bound = provider.embedding_upper_bound(inputs)
        price = services.prices.of(plan, request.model)  # spend budgets: the worst case
        reservation = services.budget.reserve(
            tenant_id=caller.tenant_id,
            key_id=caller.key_id,
            window=caller.window(),
            prompt_tokens=bound,
            max_tokens=0,
            flexible=False,
            marker=marker(caller, usage, plan),
            price=price,
        )
        call = EmbeddingCall(
            model=target.model,
            inputs=inputs,
            dimensions=request.dimensions,
            encoding_format=request.encoding_format,
            timeout_s=timeout_s,
        )
        try:
            result = provider.embed(call)
        except Exception as exc:
            if isinstance(exc, NOT_RUN):  # refused before running: release it all
                usage.fail(exc)
                usage.write()
                services.budget.settle(reservation, 0)
            else:  # it may have run: bill the upper bound, marked estimated
                cost = cost_micros(bound, 0, plan.price_prompt_micros_per_1k, 0)
                usage.fail_billed(exc, bound, 0, cost, estimated=True)
                outcome = usage.write()
                dup = outcome == "duplicate"
                services.budget.settle(reservation, 0 if dup else bound, 0 if dup else cost)
            raise
        prompt = result.prompt_tokens
        cost = cost_micros(prompt, 0, plan.price_prompt_micros_per_1k, 0)
        if result.estimated:
            usage.fail_billed(None, prompt, 0, cost, estimated=True)
        else:
            usage.ok(prompt, 0, cost)
        outcome = usage.write()
        dup = outcome == "duplicate"
        services.budget.settle(reservation, 0 if dup else prompt, 0 if dup else cost)
    vectors = [list(v) for v in result.vectors]
    return responses.embedding_list(request.model, vectors, prompt, request.encoding_format)
