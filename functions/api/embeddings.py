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

Priced like chat (issue 14): ``services.prices.of(plan, model)`` at admission, fixed into the
event at settle (prompt tokens at the prompt price); :attr:`Created.cost_micros` is what the
handler tells the caller (``x-tollgate-cost-usd``). A model the plan does not list is
recorded as ``unknown``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from functions.api import responses
from functions.api.caller import Caller
from functions.api.chat import NOT_RUN, forbid_for_test_key, marker, select_model
from functions.api.errors import ModelNotSupported
from functions.api.providers import EmbeddingCall, EmbeddingProvider
from functions.api.providers.echo import DEFAULT_DIMENSIONS, echo_vector
from functions.api.schemas import EmbeddingsRequest
from functions.api.services import Services
from functions.api.usage import UsageRecorder
from functions.pricing.catalogue import UNKNOWN
from functions.pricing.money import Tokens

OPERATION: Final = "embeddings.create"

__all__ = ["DEFAULT_DIMENSIONS", "OPERATION", "ModelNotSupported", "create", "echo_vector"]


@dataclass(frozen=True)
class Created:
    body: dict[str, Any]
    cost_micros: int


def create(
    services: Services, caller: Caller, request: EmbeddingsRequest, *, timeout_s: float = 25.0
) -> dict[str, Any]:
    return create_priced(services, caller, request, timeout_s=timeout_s).body


def create_priced(
    services: Services, caller: Caller, request: EmbeddingsRequest, *, timeout_s: float = 25.0
) -> Created:
    inputs = tuple(request.inputs)
    with UsageRecorder(services.store, caller, OPERATION, model=UNKNOWN) as usage:
        forbid_for_test_key(caller, request.model)
        plan = services.plans.get(caller.plan)
        usage.plan = plan.name
        target = select_model(caller, plan, request.model)
        usage.model = request.model  # listed by the plan: a billable name
        price = services.prices.of(plan, request.model)
        provider = services.providers.get(target.kind)
        if not isinstance(provider, EmbeddingProvider):
            raise ModelNotSupported(
                f"The model '{request.model}' cannot make embeddings here.", param="model"
            )
        provider.check_embedding_model(target.model)
        bound = provider.embedding_upper_bound(inputs)
        reservation = services.budget.reserve(
            tenant_id=caller.tenant_id,
            key_id=caller.key_id,
            window=caller.window(),
            prompt_tokens=bound,
            max_tokens=0,
            flexible=False,
            marker=marker(caller, usage, plan, price),
            price=price,  # spend budgets: the worst case at this price is held
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
                cost = usage.priced(price, Tokens(bound))
                usage.fail_billed(exc, bound, 0, cost, estimated=True)
                outcome = usage.write()
                dup = outcome == "duplicate"
                services.budget.settle(reservation, 0 if dup else bound, 0 if dup else cost)
            raise
        prompt = result.prompt_tokens
        cost = usage.priced(price, Tokens(prompt))
        if result.estimated:
            usage.fail_billed(None, prompt, 0, cost, estimated=True)
        else:
            usage.ok(prompt, 0, cost)
        outcome = usage.write()
        dup = outcome == "duplicate"
        services.budget.settle(reservation, 0 if dup else prompt, 0 if dup else cost)
    vectors = [list(v) for v in result.vectors]
    body = responses.embedding_list(request.model, vectors, prompt, request.encoding_format)
    return Created(body, cost)
