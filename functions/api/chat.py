"""One model call, whole or streamed, with its reservation and its usage event.

Serves ``POST /v1/chat/completions`` and ``POST /v1/responses`` (both ask for the same
thing: a :class:`Prompt`). Order of events for one request (each DynamoDB step is one round
trip):

1. the body was validated by the handler (400 writes nothing), ``max_tokens`` within the
   model's cap (:func:`functions.api.catalog.max_tokens_cap`);
2. a test key asking for anything but tollgate-echo, or a model the plan does not list, is
   refused (403 / 404) with an error event; no reservation, no provider;
3. reserve ``prompt upper bound + max_tokens`` (:mod:`.budget`); 429 if it cannot fit;
4. call the provider with ``max_tokens`` = the allowance reserved (whole, or streamed: the
   call is started before the response's status is sent, so a refusal is still a 4xx/5xx);
5. put the usage event (the commit point: ``attribute_not_exists(request_id)``);
6. settle the reservation (a redelivered request id releases it all).

**Accounting never under-bills.** Settled on the provider's own usage when it reports it
(upstream ``stream_options.include_usage``, Bedrock's stream ``metadata``). A provider that
refused before running (:data:`NOT_RUN`: rejected, unavailable, unreachable) releases the
reservation. Any other failure -- a timeout, a stream cut or unreadable, an answer without
usage, an unexpected error -- leaves the real usage unknown: the event carries the
reservation's upper bound (prompt upper bound + ``max_tokens``), marked ``estimated``, and
the counters are settled to it. A client that goes away mid-stream stops receiving, but the
provider's stream is read to its end (within the deadline) for its own usage; if that fails,
the upper bound. The usage event and the settle happen before the final chunk (and
``[DONE]``) is sent. Not covered here: a function killed mid-call (its reservation stays
counted until the sweep settles it at its upper bound, from the marker written after the
reservation: :func:`marker`, ``functions/gate/reservations.py``).

**Price** (issue 14): the call's price is asked once, at admission
(``services.prices.of(plan, model)``, no round trip in steady state: functions/api/prices.py),
and fixed into its usage event at settle with the token details the provider reported
(:meth:`Call._bill`); :attr:`ChatResult.cost_micros` is what the caller is told
(``x-tollgate-cost-usd``, or ``usage.cost_usd`` of a stream's last chunk). A refused request
whose model the plan does not list records the model ``unknown``: a caller's made-up name
never reaches an invoice (functions/usage/logic.py).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

from functions.api import catalog
from functions.api.budget import Reservation
from functions.api.caller import Caller
from functions.api.errors import (
    ApiError,
    InternalError,
    InvalidRequest,
    ModelNotFound,
    ModelUnavailable,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnreachable,
    TestKeyModel,
)
from functions.api.plans import PlanView
from functions.api.providers import (
    ECHO_MODEL,
    ChatMessage,
    Completion,
    Delta,
    ModelCall,
    Provider,
    Route,
    route,
)
from functions.api.services import Services
from functions.api.usage import UsageRecorder, mark_recorded
from functions.gate.reservations import Marker
from functions.pricing.catalogue import UNKNOWN
from functions.pricing.money import Price, Tokens

OPERATION = "chat.completions"
NOT_RUN = (ProviderRejected, ModelUnavailable, ProviderUnreachable)


@dataclass(frozen=True)
class Prompt:
    """What a request asks the model for, whatever the API's shape."""

    model: str
    messages: tuple[ChatMessage, ...]
    max_tokens: int | None  # None: the client chose none
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChatResult:
    id: str
    created: int
    model: str
    completion: Completion
    estimated: bool = False
    cost_micros: int = 0  # pricing (issue 14): what the call was billed, micro-dollars


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


def marker(
    caller: Caller, usage: UsageRecorder, plan: PlanView, price: Price | None = None
) -> Marker:
    """What the sweep needs to settle this request's reservation if the function dies: its
    usage event billed at the reservation (``functions/gate/reservations.py``), at ``price``
    (None: the plan's flat price)."""
    charged = price or Price.per_1k(plan.price_prompt_micros_per_1k,
                                    plan.price_completion_micros_per_1k)  # fmt: skip

    def event_of(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
        record = dataclasses.replace(usage)  # a copy: the request's own recorder is untouched
        cost = record.priced(charged, Tokens(prompt_tokens, completion_tokens))
        record.fail_billed(None, prompt_tokens, completion_tokens, cost, estimated=True)
        return record.item()

    return Marker(caller.request_id, event_of)


def check_limits(prompt: Prompt, services: Services, param: str = "max_tokens") -> int:
    """The model's ``max_tokens`` cap; a request above it is a 400 (nothing recorded)."""
    settings = services.settings
    cap = catalog.max_tokens_cap(prompt.model, settings.max_tokens_cap, settings.model_timeout_s)
    if prompt.max_tokens is not None and prompt.max_tokens > cap:
        raise InvalidRequest(
            f"{param} must be at most {cap} for the model '{prompt.model}'.", param=param
        )
    return cap


class Call:
    """One admitted model call: its reservation and usage event, settled exactly once."""

    def __init__(
        self,
        services: Services,
        caller: Caller,
        usage: UsageRecorder,
        plan: PlanView,
        provider: Provider,
        prompt_bound: int,
        reservation: Reservation,
        model_call: ModelCall,
        price: Price | None = None,
    ) -> None:
        self.services = services
        self.caller = caller
        self.usage = usage
        self.plan = plan
        self.provider = provider
        self.prompt_bound = prompt_bound
        self.reservation = reservation
        self.model_call = model_call
        self.settled = False
        self.estimated = False
        self.billed = (0, 0)  # prompt, completion tokens of the event
        # pricing (issue 14): the price fixed at admission, the cost billed at settle
        self.price = price or Price.per_1k(plan.price_prompt_micros_per_1k,
                                           plan.price_completion_micros_per_1k)  # fmt: skip
        self.cost_micros = 0

    @classmethod
    def open(
        cls,
        services: Services,
        caller: Caller,
        prompt: Prompt,
        *,
        operation: str,
        timeout_s: float,
        param: str = "max_tokens",
    ) -> Call:
        """Entitlement and reservation; on a refusal the error event is written and the
        error raised (marked recorded)."""
        cap = check_limits(prompt, services, param)
        usage = UsageRecorder(services.store, caller, operation, model=prompt.model)
        target: Route | None = None
        try:
            forbid_for_test_key(caller, prompt.model)
            plan = services.plans.get(caller.plan)
            usage.plan = plan.name
            target = select_model(caller, plan, prompt.model)
            price = services.prices.of(plan, prompt.model)
            provider = services.providers.get(target.kind)
            bound = provider.prompt_upper_bound(prompt.messages)
            reservation = services.budget.reserve(
                tenant_id=caller.tenant_id,
                key_id=caller.key_id,
                window=caller.window(),
                prompt_tokens=bound,
                max_tokens=prompt.max_tokens or min(services.settings.default_max_tokens, cap),
                flexible=prompt.max_tokens is None,
                marker=marker(caller, usage, plan, price),
                price=price,  # spend budgets: the worst case at this price is held
            )
        except Exception as exc:
            if target is None:  # a model the plan does not list: its name is not billable
                usage.model = UNKNOWN
            usage.fail(exc)
            usage.write()
            mark_recorded(exc)
            raise
        model_call = ModelCall(
            model=target.model,
            messages=prompt.messages,
            max_tokens=reservation.max_tokens,
            temperature=prompt.temperature,
            top_p=prompt.top_p,
            stop=prompt.stop,
            timeout_s=timeout_s,
        )
        return cls(services, caller, usage, plan, provider, bound, reservation, model_call, price)

    @property
    def upper_bound(self) -> tuple[int, int]:
        """The most this call can have cost: what was reserved for it."""
        return self.prompt_bound, self.reservation.max_tokens

    def _bill(self, error: BaseException | None, prompt: int, completion: int, *,
              estimated: bool, cached: int = 0, reasoning: int = 0) -> None:  # fmt: skip
        if self.settled:
            return
        self.settled = True
        # pricing (issue 14): the price fixed at admission, with the token details
        cost = self.cost_micros = self.usage.priced(
            self.price, Tokens(prompt, completion, cached, reasoning)
        )
        if error is None and not estimated:
            self.usage.ok(prompt, completion, cost)
        else:
            self.usage.fail_billed(error, prompt, completion, cost, estimated=estimated)
        self.estimated, self.billed = estimated, (prompt, completion)
        outcome = self.usage.write()
        # A redelivered request id is recorded already: hand back everything reserved here.
        # The spend counters settle to the event's own cost (counters == events).
        duplicate = outcome == "duplicate"
        self.services.budget.settle(
            self.reservation, 0 if duplicate else prompt + completion, 0 if duplicate else cost
        )

    def finish(
        self, prompt_tokens: int, completion_tokens: int, cached: int = 0, reasoning: int = 0
    ) -> None:
        """The provider reported its usage: bill exactly that."""
        self._bill(None, prompt_tokens, completion_tokens, estimated=False, cached=cached,
                   reasoning=reasoning)  # fmt: skip

    def estimate(self, error: BaseException | None) -> None:
        """The usage is unknown: bill the upper bound, marked estimated."""
        prompt, completion = self.upper_bound
        self._bill(error, prompt, completion, estimated=True)

    def fail(self, error: BaseException, *, started: bool = False) -> None:
        """The call failed: release it if the provider never ran, else bill the upper bound.
        The error is marked recorded (its event is written here)."""
        mark_recorded(error)
        if self.settled:
            return
        if isinstance(error, NOT_RUN) and not started:
            self.settled = True
            self.usage.fail(error)
            self.usage.write()
            self.services.budget.settle(self.reservation, 0)
        else:
            self.estimate(error)


def _result(
    caller: Caller,
    model: str,
    completion: Completion,
    estimated: bool,
    id_prefix: str,
    cost_micros: int = 0,
) -> ChatResult:
    return ChatResult(
        id=f"{id_prefix}{caller.request_id}",
        created=caller.request_time_ms // 1000,
        model=model,
        completion=completion,
        estimated=estimated,
        cost_micros=cost_micros,
    )


def complete(
    services: Services,
    caller: Caller,
    prompt: Prompt,
    *,
    timeout_s: float,
    operation: str = OPERATION,
    param: str = "max_tokens",
    id_prefix: str = "chatcmpl-",
) -> ChatResult:
    call = Call.open(services, caller, prompt, operation=operation, timeout_s=timeout_s,
                     param=param)  # fmt: skip
    try:
        completion = call.provider.complete(call.model_call)
    except Exception as exc:
        call.fail(exc)
        raise
    call.finish(completion.prompt_tokens, completion.completion_tokens,
                completion.cached_tokens, completion.reasoning_tokens)  # fmt: skip
    return _result(caller, prompt.model, completion, False, id_prefix, call.cost_micros)


def stream(
    services: Services,
    caller: Caller,
    prompt: Prompt,
    *,
    timeout_s: float,
    operation: str = OPERATION,
    param: str = "max_tokens",
    id_prefix: str = "chatcmpl-",
) -> ChatStream:
    """Admit, reserve and start the call; the answer comes from :meth:`ChatStream.texts`."""
    call = Call.open(services, caller, prompt, operation=operation, timeout_s=timeout_s,
                     param=param)  # fmt: skip
    try:
        deltas = call.provider.stream(call.model_call)
    except Exception as exc:
        call.fail(exc)
        raise
    meta = _result(caller, prompt.model, Completion("", 0, 0, "stop"), False, id_prefix)
    return ChatStream(call, deltas, meta)


class ChatStream:
    """A started, streamed call: its text pieces as the provider produces them, settled
    once however the stream ends (see the module docstring, "Accounting")."""

    def __init__(self, call: Call, deltas: Iterator[Delta], meta: ChatResult) -> None:
        self.call = call
        self.meta = meta
        self._deltas = deltas
        self._deadline = time.monotonic() + call.model_call.timeout_s
        self._parts: list[str] = []
        self.finish_reason = "stop"
        self._usage: tuple[int, int, int, int] | None = None  # prompt, completion, details

    @property
    def text(self) -> str:
        return "".join(self._parts)

    @property
    def result(self) -> ChatResult:
        """The whole answer with the usage billed (after the stream ended)."""
        prompt, completion = self.call.billed
        details = self._usage if self._usage is not None and not self.call.estimated else None
        cached, reasoning = (details[2], details[3]) if details else (0, 0)
        return ChatResult(self.meta.id, self.meta.created, self.meta.model,
                          Completion(self.text, prompt, completion, self.finish_reason, cached,
                                     reasoning),
                          self.call.estimated, self.call.cost_micros)  # fmt: skip

    def _take(self, delta: Delta) -> None:
        if time.monotonic() > self._deadline:
            raise ProviderTimeout()
        if delta.text:
            self._parts.append(delta.text)
        if delta.finish_reason:
            self.finish_reason = delta.finish_reason
        if delta.prompt_tokens is not None and delta.completion_tokens is not None:
            self._usage = (delta.prompt_tokens, delta.completion_tokens,
                           delta.cached_tokens, delta.reasoning_tokens)  # fmt: skip

    def _end(self) -> None:
        if self._usage is None:
            self.call.estimate(None)  # whole answer, no usage reported: the upper bound
        else:
            self.call.finish(*self._usage)

    def texts(self) -> Generator[str, None, None]:
        """The answer's pieces; raises an :class:`ApiError` (after billing) if the provider
        fails mid-stream. Closing it early (the client went away) reads the provider's
        stream to its end, without sending, to bill what it produced."""
        try:
            for delta in self._deltas:
                self._take(delta)
                if delta.text:
                    yield delta.text
        except GeneratorExit:
            self._drain()
            raise
        except ApiError as exc:
            self.call.fail(exc, started=True)
            raise
        except Exception as exc:
            self.call.fail(exc, started=True)
            raise InternalError() from exc
        self._end()

    def close(self) -> None:
        """Make sure the call is settled (a stream never iterated, or closed before its
        first piece: the provider's stream is read to its end)."""
        if not self.call.settled:
            self._drain()

    def _drain(self) -> None:
        try:
            for delta in self._deltas:
                self._take(delta)
        except Exception as exc:
            self.call.fail(exc, started=True)
            return
        self._end()
