"""``POST /v1/embeddings``: one vector per input, counted as prompt tokens.

``tollgate-echo`` returns a deterministic unit-length vector per input: SHAKE-256 of the
input's UTF-8 bytes read as ``dimensions`` unsigned 32-bit integers, centred and scaled to
length 1 (``dimensions`` defaults to 16). Its tokens are
:func:`functions.api.tokens.count` of each input, so the reservation is exact. The
entitlement rules are chat's (test keys: tollgate-echo only; a live key: the plan's
models). Bedrock and upstream embedding models are not wired yet: a model the plan lists
but that is not tollgate-echo is a 400 ``model_not_supported``.
"""

from __future__ import annotations

import hashlib
import math
import struct
from typing import Any, Final

from functions.api import responses, tokens
from functions.api.caller import Caller
from functions.api.chat import forbid_for_test_key, marker, select_model
from functions.api.errors import InvalidRequest
from functions.api.schemas import EmbeddingsRequest
from functions.api.services import Services
from functions.api.usage import UsageRecorder, cost_micros

OPERATION: Final = "embeddings.create"
DEFAULT_DIMENSIONS: Final = 16


class ModelNotSupported(InvalidRequest):
    code = "model_not_supported"


def echo_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic vector of length 1 for ``text``."""
    raw = hashlib.shake_256(text.encode("utf-8")).digest(4 * dimensions)
    values = [v / 2**31 - 1.0 for v in struct.unpack(f"<{dimensions}I", raw)]
    norm = math.sqrt(sum(v * v for v in values))
    if norm == 0.0:
        return [1.0] + [0.0] * (dimensions - 1)
    return [v / norm for v in values]


def create(services: Services, caller: Caller, request: EmbeddingsRequest) -> dict[str, Any]:
    inputs = request.inputs
    dimensions = request.dimensions or DEFAULT_DIMENSIONS
    with UsageRecorder(services.store, caller, OPERATION, model=request.model) as usage:
        forbid_for_test_key(caller, request.model)
        plan = services.plans.get(caller.plan)
        usage.plan = plan.name
        target = select_model(caller, plan, request.model)
        if target.kind != "echo":
            raise ModelNotSupported(
                f"The model '{request.model}' cannot make embeddings here.", param="model"
            )
        prompt = sum(tokens.count(text) for text in inputs)
        reservation = services.budget.reserve(
            tenant_id=caller.tenant_id,
            key_id=caller.key_id,
            window=caller.window(),
            prompt_tokens=prompt,
            max_tokens=0,
            flexible=False,
            marker=marker(caller, usage, plan),
        )
        vectors = [echo_vector(text, dimensions) for text in inputs]
        usage.ok(prompt, 0, cost_micros(prompt, 0, plan.price_prompt_micros_per_1k, 0))
        outcome = usage.write()
        services.budget.settle(reservation, 0 if outcome == "duplicate" else prompt)
    return responses.embedding_list(request.model, vectors, prompt, request.encoding_format)
