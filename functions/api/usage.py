"""Usage events: exactly one per admitted request, idempotent by the API Gateway request id.

An event (``models.UsageEvent``) says who (tenant, key, principal, parent key, environment,
source address, user agent), what (operation, model, plan), how much (prompt and completion
tokens, cost in integer micro-dollars) and how it went (status ``ok``/``error``, the error's
code as ``error_class``, latency). It never holds prompt or completion text.

``estimated`` (present and true only then) marks an event whose tokens are not the
provider's own count but the reservation's upper bound: the provider timed out, its stream
was cut or could not be read, so what it billed is unknown and Tollgate never bills less.

**The price is fixed into the event** (issue 14): a billed event carries the price it was
charged at (``price_prompt``, ``price_completion``, ``price_cached_prompt``,
``price_reasoning``: micro-dollars per 1M tokens, and ``price_source``), its
``cached_tokens`` and ``reasoning_tokens`` (parts of the prompt and completion tokens) and
``cost_micros`` = :func:`functions.pricing.money.cost_micros` of them, computed once here.
Rollups and statements add up ``cost_micros``; they never price again, so a later price
change never rewrites history.

The put is conditional on ``attribute_not_exists(request_id)``: a second delivery of the
same request id writes nothing, and its caller learns so (``False``) and releases what it
reserved. If the put itself fails (DynamoDB down), the whole event goes to the log as
``usage event not written`` (a dead letter: every field, no text) and a metric counts it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

from functions.api.caller import Caller
from functions.api.errors import ApiError, ServiceUnavailable
from functions.api.store import ApiStore
from functions.common.observability import MetricUnit, logger, metrics
from functions.pricing import money


def cost_micros(
    prompt_tokens: int, completion_tokens: int, prompt_per_1k: int, completion_per_1k: int
) -> int:
    """Cost in integer micro-dollars, rounded half up once per event.

    Prices are micro-dollars per 1,000 tokens, so the exact cost is a multiple of 1/1000
    micro-dollar: integer arithmetic, no floats.
    """
    thousandths = prompt_tokens * prompt_per_1k + completion_tokens * completion_per_1k
    return (thousandths + 500) // 1000


def charge(price: money.Price, tokens: money.Tokens) -> int:
    """What ``tokens`` cost at ``price``: integer micro-dollars, rounded half up once."""
    return money.cost_micros(price, tokens)


Outcome = Literal["written", "duplicate", "failed"]
_RECORDED = "_tollgate_usage_recorded"


def mark_recorded(error: BaseException) -> None:
    """Say that this request's event was written for ``error`` (nothing else writes one)."""
    setattr(error, _RECORDED, True)


def was_recorded(error: BaseException) -> bool:
    """True if a :class:`UsageRecorder` already wrote this request's event for ``error``."""
    return bool(getattr(error, _RECORDED, False))


@dataclass
class UsageRecorder:
    """Collects one request's usage and writes its event once.

    As a context manager it writes the event on the way out if the logic has not: an
    :class:`ApiError` becomes ``status=error`` with its code, any other exception
    ``internal_error``.
    """

    store: ApiStore
    caller: Caller
    operation: str
    model: str = "-"
    plan: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: int = 0
    status: str = "ok"
    error_class: str | None = None
    estimated: bool = False
    # pricing (issue 14): the price charged and the token details (set by :meth:`priced`)
    price: money.Price | None = None
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    outcome: Outcome | None = field(default=None, init=False)  # None: not attempted yet
    delivery: str = field(default_factory=lambda: uuid.uuid4().hex, init=False)

    def ok(self, prompt_tokens: int = 0, completion_tokens: int = 0, cost: int = 0) -> None:
        self.status, self.error_class = "ok", None
        self.prompt_tokens, self.completion_tokens, self.cost = (
            prompt_tokens,
            completion_tokens,
            cost,
        )

    def priced(self, price: money.Price, tokens: money.Tokens) -> int:
        """Fix the price and the token details into the event; the cost (micro-dollars).
        Call before :meth:`ok` / :meth:`fail_billed` with the same tokens."""
        self.price = price
        self.cached_tokens, self.reasoning_tokens = tokens.cached, tokens.reasoning
        return charge(price, tokens)

    def fail(self, error: BaseException) -> None:
        self.status = "error"
        self.error_class = error.error_code if isinstance(error, ApiError) else "internal_error"
        self.prompt_tokens = self.completion_tokens = self.cost = 0
        self.cached_tokens = self.reasoning_tokens = 0
        self.price = None
        self.estimated = False

    def fail_billed(
        self,
        error: BaseException | None,
        prompt_tokens: int,
        completion_tokens: int,
        cost: int,
        *,
        estimated: bool,
    ) -> None:
        """The call failed (or was cut) after the provider may have run: bill these tokens.
        ``error`` None: the answer came whole, only its usage was missing (status ok)."""
        if error is not None:
            price, cached, reasoning = self.price, self.cached_tokens, self.reasoning_tokens
            self.fail(error)
            self.price, self.cached_tokens, self.reasoning_tokens = price, cached, reasoning
        else:
            self.status, self.error_class = "ok", None
        self.prompt_tokens, self.completion_tokens, self.cost = (
            prompt_tokens,
            completion_tokens,
            cost,
        )
        self.estimated = estimated

    def item(self) -> dict[str, Any]:
        c = self.caller
        return {
            "request_id": c.request_id,
            "ts": c.request_time_ms,
            "tenant_id": c.tenant_id,
            "key_id": c.key_id,
            "principal": c.principal,
            "parent_key_id": c.parent_key_id,
            "environment": c.environment,
            "operation": self.operation,
            "model": self.model,
            "plan": self.plan or c.plan or None,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_micros": self.cost,
            "status": self.status,
            "error_class": self.error_class,
            "latency_ms": max(0, round((time.monotonic() - c.started) * 1000)),
            "source_ip": c.source_ip,
            "user_agent": c.user_agent,
            "delivery": self.delivery,
            **({"estimated": True} if self.estimated else {}),
            **self._price_fields(),
        }

    def _price_fields(self) -> dict[str, Any]:
        """The price charged and the token details (absent on an unpriced event)."""
        p = self.price
        if p is None:
            return {}
        return {
            "cached_tokens": self.cached_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "price_prompt": p.prompt,
            "price_completion": p.completion,
            "price_cached_prompt": p.cached_prompt,
            "price_reasoning": p.reasoning,
            "price_source": p.source,
        }

    def write(self) -> Outcome:
        """Write the event (at most once per request): ``written`` by this delivery,
        ``duplicate`` (the request id was recorded already) or ``failed`` (DynamoDB did not
        answer; the event is logged as a dead letter)."""
        if self.outcome is not None:
            return self.outcome
        item = self.item()
        try:
            self.outcome = "written" if self.store.put_event(item) else "duplicate"
        except ServiceUnavailable as exc:
            self.outcome = "failed"
            logger.error("usage event not written", extra={"event": item, "error": exc.message})
            metrics.add_metric(name="UsageEventNotWritten", unit=MetricUnit.Count, value=1)
            return self.outcome
        if self.outcome == "written":
            metrics.add_metric(name="UsageEvents", unit=MetricUnit.Count, value=1)
            tokens = self.prompt_tokens + self.completion_tokens
            if tokens:
                metrics.add_metric(name="Tokens", unit=MetricUnit.Count, value=tokens)
            if self.cost and self.caller.environment == "live":
                metrics.add_metric(name="SpendMicroUsd", unit=MetricUnit.Count, value=self.cost)
            if self.estimated:
                metrics.add_metric(name="UsageEstimated", unit=MetricUnit.Count, value=1)
        if self.outcome == "duplicate":
            logger.warning(
                "duplicate delivery of a request id: usage already recorded",
                extra={"request_id": self.caller.request_id},
            )
            metrics.add_metric(name="DuplicateDelivery", unit=MetricUnit.Count, value=1)
        return self.outcome

    def __enter__(self) -> UsageRecorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            mark_recorded(exc)
        if self.outcome is not None:
            return
        if exc is not None:
            self.fail(exc)
        self.write()
