"""The route table: one place that drives the authorizer, the CDK routes and the local gateway.

Each route names the operation it performs, the scope a key must carry for it (None: any
valid key), and the key environments allowed on it. Fine-tuning jobs are billable live
resources, so their routes are live-only; a test key there gets 403 ``wrong_environment``.

The gateway responses are the bodies API Gateway answers with when the request never
reaches an integration (authorizer refusals, failures, unknown routes); CDK turns them into
``GatewayResponse`` resources and the local gateway serves the same bodies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

BOTH: Final = frozenset({"live", "test"})
LIVE: Final = frozenset({"live"})


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # API Gateway resource path, e.g. "/v1/tools/{name}/invoke"
    operation: str
    scope: str | None  # None: any valid key may call it
    environments: frozenset[str] = BOTH
    # False: no API key (the leak webhook verifies a signature, the token route an OIDC token)
    authorized: bool = True
    function: str = "api"  # which function serves it: a key of HANDLERS
    # Integrated with API Gateway's response streaming (responseTransferMode STREAM): the
    # function answers in the integration-response format (functions/api/streaming.py) and
    # may run up to 15 minutes; other routes are buffered (29 s).
    streaming: bool = False

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(p for p in self.path.split("/") if p)


ROUTES: Final[tuple[Route, ...]] = (
    Route("POST", "/v1/chat/completions", "chat.completions", "inference:invoke", streaming=True),
    Route("POST", "/v1/responses", "responses.create", "inference:invoke", streaming=True),
    Route("POST", "/v1/embeddings", "embeddings.create", "inference:invoke"),
    Route("GET", "/v1/models", "models.list", None),
    Route("GET", "/v1/models/{model}", "models.retrieve", None),
    Route("POST", "/v1/tools/{name}/invoke", "tools.invoke", "tools:execute"),
    Route("GET", "/v1/fine_tuning/jobs", "fine_tuning.jobs.list", "finetune:read", LIVE),
    Route("GET", "/v1/fine_tuning/jobs/{id}", "fine_tuning.jobs.get", "finetune:read", LIVE),
    # How a key is obtained (OIDC token exchange, RFC 8693): no key, no authorizer; behind
    # the WAF, checked by its own function (functions/trust/).
    Route("POST", "/v1/auth/token", "auth.token", None, authorized=False, function="token"),
    Route(
        "POST",
        "/webhooks/github/secret-scanning",
        "webhooks.github.secret_scanning",
        None,
        authorized=False,
        function="webhook",
    ),
)

# The Lambda handler of each function that serves routes (CDK and the local gateway use it).
HANDLERS: Final[dict[str, str]] = {
    "api": "functions.api.handler.handler",
    "webhook": "functions.webhook.handler.handler",
    "token": "functions.trust.handler.handler",
}

SCOPES: Final[frozenset[str]] = frozenset(r.scope for r in ROUTES if r.scope)

_BY_METHOD_PATH: Final = {(r.method, r.path): r for r in ROUTES}


def route_for(method: str, resource: str) -> Route | None:
    """The route for an API Gateway ``httpMethod`` and ``resource`` (the template path)."""
    return _BY_METHOD_PATH.get((method.upper(), resource))


def match(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """Match a concrete request path against the table (what API Gateway does for us)."""
    parts = tuple(p for p in path.split("/") if p)
    for route in ROUTES:
        if route.method != method.upper() or len(route.segments) != len(parts):
            continue
        params: dict[str, str] = {}
        for pattern, value in zip(route.segments, parts, strict=True):
            if pattern.startswith("{") and pattern.endswith("}"):
                params[pattern[1:-1]] = value
            elif pattern != value:
                break
        else:
            return route, params
    return None


def path_exists(path: str) -> bool:
    """True when some route has this path under another method (API Gateway answers 403/405)."""
    return any(match(r.method, path) for r in ROUTES)


def error_body(message: str, type_: str, code: str) -> str:
    return json.dumps({"error": {"message": message, "type": type_, "code": code}})


@dataclass(frozen=True)
class GatewayResponse:
    """An API Gateway gateway response: status, headers and a body template.

    ``template`` may use ``$context.authorizer.<name>`` placeholders, which API Gateway
    fills from the authorizer's context (the local gateway does the same).
    """

    status: int
    template: str
    headers: tuple[tuple[str, str], ...] = ()


_AUTHORIZER_ERROR: Final = (
    '{"error": {"message": "$context.authorizer.message", '
    '"type": "$context.authorizer.type", "code": "$context.authorizer.code"}}'
)

# Keyed by API Gateway's ResponseType names.
GATEWAY_RESPONSES: Final[dict[str, GatewayResponse]] = {
    "UNAUTHORIZED": GatewayResponse(
        401,
        error_body(
            "Missing, malformed or unknown API key. Send it as 'Authorization: Bearer KEY' "
            "or 'x-api-key: KEY'.",
            "invalid_request_error",
            "invalid_api_key",
        ),
        (("WWW-Authenticate", 'Bearer realm="tollgate"'),),
    ),
    "ACCESS_DENIED": GatewayResponse(403, _AUTHORIZER_ERROR),
    "AUTHORIZER_FAILURE": GatewayResponse(
        503,
        error_body(
            "The authorization service is unavailable; the request was refused. Retry later.",
            "server_error",
            "service_unavailable",
        ),
        (("Retry-After", "1"),),
    ),
    "AUTHORIZER_CONFIGURATION_ERROR": GatewayResponse(
        503,
        error_body(
            "The authorization service is misconfigured; the request was refused.",
            "server_error",
            "service_unavailable",
        ),
    ),
    "MISSING_AUTHENTICATION_TOKEN": GatewayResponse(
        404, error_body("Unknown route.", "invalid_request_error", "not_found")
    ),
    "THROTTLED": GatewayResponse(
        429,
        error_body("Too many requests at the edge; slow down.", "rate_limit_error", "rate_limited"),
        (("Retry-After", "1"),),
    ),
    "REQUEST_TOO_LARGE": GatewayResponse(
        413, error_body("Request body too large.", "invalid_request_error", "request_too_large")
    ),
    "DEFAULT_4XX": GatewayResponse(
        400, error_body("Bad request.", "invalid_request_error", "bad_request")
    ),
    "DEFAULT_5XX": GatewayResponse(
        502, error_body("Upstream error.", "server_error", "bad_gateway")
    ),
}


def render_gateway_response(kind: str, context: dict[str, object] | None = None) -> GatewayResponse:
    """The response API Gateway would send, with ``$context.authorizer.*`` filled in."""
    response = GATEWAY_RESPONSES[kind]
    body = response.template
    for name, value in (context or {}).items():
        # API Gateway substitutes raw text; our values never hold quotes (see authorizer).
        body = body.replace(f"$context.authorizer.{name}", str(value))
    return GatewayResponse(response.status, body, response.headers)
