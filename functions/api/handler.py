"""Lambda entry point of the managed API (thin: parse, call one piece of logic, shape).

Every request passes the ``_admit`` middleware first: a refusal ``verdict`` from the
authorizer (rate limit, quota, tokens) is answered 429 with ``Retry-After`` right there,
before any I/O: no DynamoDB call, no model call, no usage event. Domain errors are
:class:`~functions.api.errors.ApiError` subclasses mapped once, below, to their status and
OpenAI error body; anything unexpected is a 500 ``internal_error`` without a stack trace.

A streamed answer (``stream: true``) is a proxy response whose body is an iterator of
server-sent events, produced as the model produces them (functions/api/streaming.py says
how it reaches the client, in AWS and locally). Everything that can refuse the request
(entitlement, budget, the provider's refusal) happens before the handler returns, so a
refusal is still an HTTP error status; what happens later (a provider failing mid-stream)
ends the stream with an error event, after the usage is billed (functions/api/chat.py).

**What a call cost** (issue 14): a non-streamed model call (chat, responses, embeddings)
answers with the header ``x-tollgate-cost-usd`` (:data:`COST_HEADER`), the exact cost billed
as a decimal string of USD with six places (``0.001250``); a stream's headers leave before
the cost is known, so its last usage chunk carries ``usage.cost_usd`` instead
(functions/api/responses.py).
"""

from __future__ import annotations

import binascii
import contextlib
import json
import threading
import urllib.parse
from collections.abc import Mapping
from typing import Any, Final

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.logging import correlation_paths

from functions.api import catalog, chat, embeddings, jobs, responses, schemas, tools
from functions.api.caller import Caller, authorizer_context, verdict_refusal
from functions.api.errors import (
    ApiError,
    InternalError,
    InvalidRequest,
    MissingScope,
    RouteNotFound,
    WrongEnvironment,
)
from functions.api.providers import ChatMessage
from functions.api.services import Services
from functions.api.usage import UsageRecorder, was_recorded
from functions.common.observability import MetricUnit, logger, metrics
from functions.common.routes import route_for
from functions.pricing.money import usd

JSON = "application/json"
SAFETY_MARGIN_S = 3.0  # time kept to write the usage event and settle after a model call
BUFFERED_LIMIT_S: Final = 25.0  # a buffered route answers within API Gateway's 29 s
SSE_HEADERS: Final = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
COST_HEADER: Final = "x-tollgate-cost-usd"


def _cost(micros: int) -> dict[str, str]:
    """The header that tells the caller what the call cost (exact, six decimals)."""
    return {COST_HEADER: usd(micros)}


_services: Services | None = None
_services_lock = threading.Lock()


def services() -> Services:
    """This container's clients, caches and providers (built on first use)."""
    global _services
    if _services is None:
        with _services_lock:
            if _services is None:
                _services = Services.build()
    return _services


def reset(new: Services | None = None) -> None:
    """Forget (or replace) the container's services: tests point them elsewhere."""
    global _services
    _services = new


class ThreadSafeRestResolver(APIGatewayRestResolver):
    """``APIGatewayRestResolver`` with the current event and context kept per thread.

    Powertools keeps the current event in a class attribute (``BaseRouter.current_event``)
    and the request context in one dict: right in Lambda (one request per container at a
    time), wrong when a host calls the handler from several threads at once (the local
    gateway, the concurrency tests), where one request would read another's tenant.
    """

    _state = threading.local()

    @property
    def current_event(self) -> Any:
        return self._state.event

    @current_event.setter
    def current_event(self, value: Any) -> None:
        self._state.event = value

    @property
    def lambda_context(self) -> Any:
        return getattr(self._state, "lambda_context", None)

    @lambda_context.setter
    def lambda_context(self, value: Any) -> None:
        self._state.lambda_context = value

    @property
    def context(self) -> dict[str, Any]:
        ctx = getattr(self._state, "context", None)
        if ctx is None:
            ctx = self._state.context = {}
        return ctx

    @context.setter
    def context(self, value: dict[str, Any]) -> None:
        self._state.context = value

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        self.current_event = self._to_proxy_event(dict(event))
        self.lambda_context = context
        try:
            return self._build_response(self._resolve())
        finally:
            self.clear_context()


app = ThreadSafeRestResolver()


def _request_id() -> str:
    rc = app.current_event.raw_event.get("requestContext") or {}
    return str(rc.get("requestId") or "")


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type=JSON,
        body=json.dumps(body),
        headers={"x-request-id": _request_id(), **(headers or {})},
    )


def _body() -> str | None:
    """The request body as text; a body that is not UTF-8 (or not valid base64) is a 400."""
    try:
        return app.current_event.decoded_body
    except (UnicodeDecodeError, binascii.Error, ValueError):
        raise InvalidRequest("The request body must be UTF-8 encoded JSON.") from None


def _caller() -> Caller:
    caller: Caller = app.context["caller"]
    return caller


def _operation() -> str:
    event = app.current_event
    route = route_for(event.http_method, event.resource)
    return route.operation if route else "unknown"


def _timeout_s() -> float:
    """The model call's time limit: the configured one (a buffered route: within API
    Gateway's 29 s), within the invocation's time left less the margin to bill."""
    configured = services().settings.model_timeout_s
    event = app.current_event
    route = route_for(event.http_method, event.resource)
    if route is None or not route.streaming:
        configured = min(configured, BUFFERED_LIMIT_S)
    remaining = getattr(app.lambda_context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return configured
    return max(1.0, min(configured, remaining() / 1000 - SAFETY_MARGIN_S))


def _admit(resolver: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response:
    """The authorizer's verdict first (no I/O), then who is calling."""
    raw = app.current_event.raw_event
    refusal = verdict_refusal(raw)
    if refusal is not None:
        metrics.add_metric(name="RefusedOverLimit", unit=MetricUnit.Count, value=1)
        raise refusal
    caller = Caller.from_event(raw)
    # Defence in depth: the authorizer checked both already.
    route = route_for(app.current_event.http_method, app.current_event.resource)
    if route is not None:
        if caller.environment not in route.environments:
            raise WrongEnvironment(f"A {caller.environment} key cannot call {route.operation}.")
        if route.scope is not None and route.scope not in caller.scopes:
            raise MissingScope(f"The API key lacks the scope {route.scope}.")
    app.append_context(caller=caller)
    try:
        return next_middleware(resolver)
    except Exception as exc:
        # Invariant 4: every admitted request leaves exactly one usage event, also when it
        # failed before its route opened a recorder (a malformed body, say).
        if not was_recorded(exc):
            with (
                contextlib.suppress(Exception),
                UsageRecorder(services().store, caller, _operation()) as usage,
            ):
                usage.fail(exc)
        raise


app.use(middlewares=[_admit])


# -- routes ------------------------------------------------------------------------------
def _stream(body: Any) -> Response:
    return Response(
        status_code=200,
        content_type="text/event-stream",
        body=body,  # an iterator: streamed as produced (functions/api/streaming.py)
        headers={"x-request-id": _request_id(), **SSE_HEADERS},
    )


@app.post("/v1/chat/completions")
def chat_completions() -> Response:
    request = schemas.parse(schemas.ChatRequest, _body())
    prompt = chat.Prompt(
        model=request.model,
        messages=tuple(ChatMessage(m.role, m.text) for m in request.messages),
        max_tokens=request.requested_max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        stop=request.stops,
    )
    if request.stream:
        stream = chat.stream(services(), _caller(), prompt, timeout_s=_timeout_s())
        return _stream(responses.chat_completion_sse(stream, include_usage=request.include_usage))
    result = chat.complete(services(), _caller(), prompt, timeout_s=_timeout_s())
    return _json(responses.chat_completion(result), headers=_cost(result.cost_micros))


@app.post("/v1/responses")
def create_response() -> Response:
    request = schemas.parse(schemas.ResponsesRequest, _body())
    prompt = chat.Prompt(
        model=request.model,
        messages=tuple(ChatMessage(role, text) for role, text in request.messages),
        max_tokens=request.max_output_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
    )
    args: dict[str, Any] = {"timeout_s": _timeout_s(), "operation": _operation(),
                            "param": "max_output_tokens", "id_prefix": "resp_"}  # fmt: skip
    if request.stream:
        stream = chat.stream(services(), _caller(), prompt, **args)
        return _stream(responses.response_sse(stream, request))
    result = chat.complete(services(), _caller(), prompt, **args)
    return _json(responses.response_object(result, request), headers=_cost(result.cost_micros))


@app.post("/v1/embeddings")
def create_embeddings() -> Response:
    request = schemas.parse(schemas.EmbeddingsRequest, _body())
    created = embeddings.create_priced(services(), _caller(), request, timeout_s=_timeout_s())
    return _json(created.body, headers=_cost(created.cost_micros))


@app.get("/v1/models/<model>")
def retrieve_model(model: str) -> Response:
    model_id = urllib.parse.unquote(model)
    return _json(catalog.get_model(services(), _caller(), model_id, _operation()))


@app.get("/v1/models")
def list_models() -> Response:
    return _json(catalog.list_models(services(), _caller(), _operation()))


@app.post("/v1/tools/<name>/invoke")
def invoke_tool(name: str) -> Response:
    body = _body()
    call = schemas.parse(schemas.ToolCall, body) if body and body.strip() else schemas.ToolCall()
    return _json(tools.invoke(services(), _caller(), name, call))


@app.get("/v1/fine_tuning/jobs")
def list_fine_tuning_jobs() -> Response:
    query = app.current_event.query_string_parameters
    return _json(jobs.list_jobs(services(), _caller(), query, _operation()))


@app.get("/v1/fine_tuning/jobs/<job_id>")
def get_fine_tuning_job(job_id: str) -> Response:
    return _json(jobs.get_job(services(), _caller(), job_id, _operation()))


# -- errors: mapped once -----------------------------------------------------------------
@app.exception_handler(ApiError)
def _api_error(error: ApiError) -> Response:
    logger.info(
        "request refused",
        extra={"status": error.status, "code": error.error_code, "request_id": _request_id()},
    )
    return _json(error.body(), error.status, error.headers())


@app.not_found
def _unknown_route(_: NotFoundError) -> Response:
    """API Gateway matched a route the router does not (e.g. a path parameter holding a
    character the router's pattern refuses). If the gate admitted the request it must still
    leave its one usage event (invariant 4); over a limit it was not admitted: 429."""
    raw = app.current_event.raw_event
    refusal = verdict_refusal(raw)
    if refusal is not None:
        return _api_error(refusal)
    error = RouteNotFound()
    if authorizer_context(raw) is not None:
        with contextlib.suppress(Exception):
            caller = Caller.from_event(raw)
            with UsageRecorder(services().store, caller, _operation()) as usage:
                usage.fail(error)
    return _api_error(error)


@app.exception_handler(Exception)
def _unexpected(error: Exception) -> Response:
    logger.exception("unexpected error", extra={"request_id": _request_id()})
    return _api_error(InternalError())


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
