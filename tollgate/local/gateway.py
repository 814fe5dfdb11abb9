"""A local stand-in for API Gateway (REST API, Lambda proxy integration, REQUEST authorizer).

For each HTTP request it does what the deployed stack's API Gateway does:

1. match the route table (``functions.common.routes``); an unknown path or method gets the
   MISSING_AUTHENTICATION_TOKEN gateway response;
2. for an authorized route, build the REQUEST-authorizer event and call the real authorizer
   handler: raising "Unauthorized" gives UNAUTHORIZED (401), any other exception
   AUTHORIZER_FAILURE (503), a malformed answer AUTHORIZER_CONFIGURATION_ERROR; the returned
   policy is evaluated against the method ARN as IAM matches a ``Resource`` (explicit Deny
   wins, Allow required; ``*`` and ``?`` wildcards, no escape: ``_arn_matches``) and a
   refusal gets ACCESS_DENIED with ``$context.authorizer.*`` filled in;
3. build the Lambda proxy event, with ``requestContext.authorizer`` holding the principal id
   and the authorizer's context, call the real API handler, and turn its proxy response into
   the HTTP response; an exception or a malformed response gives DEFAULT_5XX (502).
   A ``streaming`` route (API Gateway's response streaming) goes through the same bytes the
   function's runtime streams in AWS: the result as an integration response (JSON prelude,
   8 NUL bytes, body; functions/api/streaming.py), read back as API Gateway reads it, and
   each piece is written to the client (chunked) as the handler produces it.

The authorizer result is never cached (the stack sets TTL 0). Handlers run in the gateway's
threads; DynamoDB atomicity comes from moto being serialised (``tollgate.local.aws``).
"""

from __future__ import annotations

import base64
import importlib
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from werkzeug.datastructures import Headers
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from functions.api.streaming import (
    MalformedIntegrationResponse,
    integration_response,
    is_streamed,
    read_integration_response,
)
from functions.common.routes import HANDLERS, Route, match, render_gateway_response

ACCOUNT = "123456789012"
API_ID = "local"
STAGE = "prod"
REGION = "us-east-1"
MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit
BUFFERED_TIMEOUT_MS = 29_000  # API Gateway's integration timeout (buffered routes)
STREAMING_TIMEOUT_MS = 900_000  # the streaming integration's and the function's: 15 minutes
Handler = Callable[[dict[str, Any], Any], Any]


class LambdaContext:
    """The attributes Powertools reads from a Lambda context."""

    def __init__(self, name: str, timeout_ms: int = BUFFERED_TIMEOUT_MS) -> None:
        self.function_name = name
        self.memory_limit_in_mb = 256
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + timeout_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _load(path: str) -> Handler | None:
    module, _, attr = path.rpartition(".")
    try:
        handler: Handler = getattr(importlib.import_module(module), attr)
        return handler
    except ModuleNotFoundError:
        return None


def _gateway_response(kind: str, context: dict[str, Any] | None = None) -> Response:
    resp = render_gateway_response(kind, context)
    return Response(
        resp.template,
        status=resp.status,
        headers=list(resp.headers),
        content_type="application/json",
    )


def _segment_regex(pattern: str, *, crosses_colons: bool) -> str:
    """One ARN segment's IAM wildcards as a regex: ``*`` any run of characters, ``?`` any one
    character, everything else literal (IAM has no escape)."""
    one, run = (".", ".*") if crosses_colons else ("[^:]", "[^:]*")
    return "".join(run if c == "*" else one if c == "?" else re.escape(c) for c in pattern)


def _arn_matches(pattern: str, arn: str) -> bool:
    """IAM's ``Resource`` matching: the ARN's first five segments (split at colons) are
    matched one by one, and a ``*`` that ends a segment may run past its colon (so ``*``
    alone matches every ARN); the sixth, the resource (``api-id/stage/METHOD/path``, colons
    and all), is matched whole. Case matters; a newline is a character like any other."""
    head = pattern.split(":", 5)
    if len(head) < 6 and not head[-1].endswith("*"):
        return False
    parts = [
        _segment_regex(seg, crosses_colons=False) + (".*" if seg.endswith("*") else "")
        for seg in head[:5]
    ]
    if len(head) == 6:
        parts.append(_segment_regex(head[5], crosses_colons=True))
    return re.fullmatch(":".join(parts), arn, flags=re.DOTALL) is not None


def policy_allows(policy: Any, method_arn: str) -> bool | None:
    """True/False as API Gateway evaluates the policy for ``method_arn``; None if malformed."""
    try:
        statements = policy["policyDocument"]["Statement"]
        allowed = False
        for st in statements:
            actions = st.get("Action", [])
            actions = [actions] if isinstance(actions, str) else actions
            if not any(a in ("execute-api:Invoke", "execute-api:*", "*") for a in actions):
                continue
            resources = st.get("Resource", [])
            resources = [resources] if isinstance(resources, str) else resources
            if not any(_arn_matches(r, method_arn) for r in resources):
                continue
            if st["Effect"] == "Deny":
                return False
            if st["Effect"] == "Allow":
                allowed = True
        return allowed
    except (KeyError, TypeError, AttributeError):
        return None


class LocalGateway:
    def __init__(
        self,
        authorizer: str = "functions.authorizer.handler.handler",
        handlers: dict[str, str] | None = None,
        ready: Callable[[], bool] = lambda: True,
        access_log: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self._authorizer_path = authorizer
        self._handlers = dict(HANDLERS if handlers is None else handlers)
        self._ready = ready
        # Receives one JSON access-log line per routed request, as the stack's access log
        # subscription does (the spike detector reads refusals from it). Must not block.
        self._access_log = access_log

    # -- events ---------------------------------------------------------------------------
    @staticmethod
    def _headers(request: Request) -> tuple[dict[str, str], dict[str, list[str]]]:
        single: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            single[name] = value
            multi.setdefault(name, []).append(value)
        return single, multi

    @staticmethod
    def method_arn(route: Route, path: str) -> str:
        """The method ARN API Gateway hands the authorizer: the request's own path (not the
        resource template), every character kept, colons included. The path is the
        percent-decoded one this gateway routes on and puts in ``path``; whether API Gateway
        decodes it here too is not verified (docs/architecture.md): the authorizer echoes
        the ARN back verbatim, so it does not depend on it."""
        return f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{API_ID}/{STAGE}/{route.method}{path}"

    def _request_context(
        self, request: Request, route: Route, request_id: str, now: float
    ) -> dict[str, Any]:
        return {
            "accountId": ACCOUNT,
            "apiId": API_ID,
            "httpMethod": route.method,
            "identity": {
                "sourceIp": request.remote_addr or "127.0.0.1",
                "userAgent": request.headers.get("User-Agent", ""),
            },
            "path": f"/{STAGE}{request.path}",
            "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
            "requestId": request_id,
            "requestTime": datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now * 1000),
            "resourceId": "local",
            "resourcePath": route.path,
            "stage": STAGE,
        }

    def authorizer_event(
        self, request: Request, route: Route, params: dict[str, str], rc: dict[str, Any]
    ) -> dict[str, Any]:
        headers, multi = self._headers(request)
        query = request.args
        return {
            "type": "REQUEST",
            "methodArn": self.method_arn(route, request.path),
            "resource": route.path,
            "path": request.path,
            "httpMethod": route.method,
            "headers": headers,
            "multiValueHeaders": multi,
            "queryStringParameters": {k: query.getlist(k)[-1] for k in query},
            "multiValueQueryStringParameters": {k: query.getlist(k) for k in query},
            "pathParameters": params,
            "stageVariables": {},
            "requestContext": rc,
        }

    def proxy_event(
        self,
        request: Request,
        route: Route,
        params: dict[str, str],
        rc: dict[str, Any],
        authorizer: dict[str, Any] | None,
    ) -> dict[str, Any]:
        headers, multi = self._headers(request)
        raw = request.get_data(cache=True)
        try:
            body, is_b64 = raw.decode("utf-8"), False
        except UnicodeDecodeError:
            body, is_b64 = base64.b64encode(raw).decode("ascii"), True
        query = request.args
        return {
            "resource": route.path,
            "path": request.path,
            "httpMethod": route.method,
            "headers": headers or None,
            "multiValueHeaders": multi or None,
            "queryStringParameters": {k: query.getlist(k)[-1] for k in query} or None,
            "multiValueQueryStringParameters": {k: query.getlist(k) for k in query} or None,
            "pathParameters": params or None,
            "stageVariables": None,
            "requestContext": {**rc, "authorizer": authorizer} if authorizer else rc,
            "body": body if raw else None,
            "isBase64Encoded": is_b64,
        }

    # -- the request ----------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        if request.path == "/health" and request.method == "GET":
            ok = self._ready()
            return Response(
                json.dumps({"status": "ok" if ok else "starting"}),
                status=200 if ok else 503,
                content_type="application/json",
            )
        matched = match(request.method, request.path)
        if matched is None:
            return _gateway_response("MISSING_AUTHENTICATION_TOKEN")
        if (request.content_length or 0) > MAX_BODY:
            return _gateway_response("REQUEST_TOO_LARGE")
        route, params = matched
        now = time.time()
        rc = self._request_context(request, route, str(uuid.uuid4()), now)
        log: dict[str, Any] = {"errorType": "-", "keyId": "-"}
        response = self._routed(request, route, params, rc, log)
        if self._access_log is not None:
            self._access_log(
                {
                    "requestId": rc["requestId"],
                    "ip": rc["identity"]["sourceIp"],
                    "requestTime": rc["requestTime"],
                    "httpMethod": route.method,
                    "resourcePath": route.path,
                    "status": str(response.status_code),
                    **log,
                }
            )
        return response

    def _routed(
        self,
        request: Request,
        route: Route,
        params: dict[str, str],
        rc: dict[str, Any],
        log: dict[str, Any],
    ) -> Response:
        authorizer_ctx: dict[str, Any] | None = None
        if route.authorized:
            outcome = self._authorize(request, route, params, rc, log)
            if isinstance(outcome, Response):
                return outcome
            authorizer_ctx = outcome

        api = _load(self._handlers[route.function])
        if api is None:
            return Response(
                json.dumps(
                    {
                        "error": {
                            "message": "Not implemented yet.",
                            "type": "server_error",
                            "code": "not_implemented",
                        }
                    }
                ),
                status=501,
                content_type="application/json",
            )
        event = self.proxy_event(request, route, params, rc, authorizer_ctx)
        timeout_ms = STREAMING_TIMEOUT_MS if route.streaming else BUFFERED_TIMEOUT_MS
        try:
            result = api(event, LambdaContext(f"tollgate-{route.function}", timeout_ms))
            if route.streaming:
                return self._streamed_response(result)
            return self._proxy_response(result)
        except Exception:  # the function failed: API Gateway answers 502
            return _gateway_response("DEFAULT_5XX")

    def _authorize(
        self,
        request: Request,
        route: Route,
        params: dict[str, str],
        rc: dict[str, Any],
        log: dict[str, Any],
    ) -> dict[str, Any] | Response:
        authorizer = _load(self._authorizer_path)
        if authorizer is None:
            return _gateway_response("AUTHORIZER_CONFIGURATION_ERROR")
        event = self.authorizer_event(request, route, params, rc)
        try:
            policy = authorizer(event, LambdaContext("tollgate-authorizer"))
        except Exception as exc:
            kind = "UNAUTHORIZED" if str(exc) == "Unauthorized" else "AUTHORIZER_FAILURE"
            log["errorType"] = kind
            return _gateway_response(kind)
        allowed = policy_allows(policy, event["methodArn"])
        context = policy.get("context") or {} if isinstance(policy, dict) else {}
        if allowed is None or not isinstance(context, dict):
            return _gateway_response("AUTHORIZER_CONFIGURATION_ERROR")
        log["keyId"] = str(context.get("key_id") or "-")
        log["tenantId"] = str(context.get("tenant_id") or "-")  # as the stack's access log
        log["decision"] = str(context.get("code") or "-")
        if not allowed:
            log["errorType"] = "ACCESS_DENIED"
            return _gateway_response("ACCESS_DENIED", context)
        return {"principalId": policy.get("principalId", ""), **context}

    @staticmethod
    def _streamed_response(result: Any) -> Response:
        """A streaming integration: the integration-response bytes the function streams,
        read as API Gateway reads them; the body goes out piece by piece as produced."""
        if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
            return _gateway_response("DEFAULT_5XX")
        try:
            streamed = read_integration_response(integration_response(result))
        except MalformedIntegrationResponse:
            return _gateway_response("DEFAULT_5XX")
        headers = Headers()
        for name, value in streamed.headers:
            headers.add(name, value)
        return Response(streamed.body, status=streamed.status, headers=headers,
                        direct_passthrough=True)  # fmt: skip

    @staticmethod
    def _proxy_response(result: Any) -> Response:
        if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
            return _gateway_response("DEFAULT_5XX")
        if is_streamed(result):  # only a streaming integration can carry an iterator
            return _gateway_response("DEFAULT_5XX")
        headers = Headers()
        for name, value in (result.get("headers") or {}).items():
            headers[name] = str(value)
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers.remove(name)
            for v in values:
                headers.add(name, str(v))
        body = result.get("body") or ""
        data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
        return Response(data, status=result["statusCode"], headers=headers)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        return self.handle(Request(environ))(environ, start_response)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


def serve(gateway: LocalGateway, host: str, port: int, *, quiet: bool = True) -> BaseWSGIServer:
    """A threaded server for ``gateway`` (call ``serve_forever`` on it)."""
    return make_server(
        host, port, gateway, threaded=True, request_handler=_QuietHandler if quiet else None
    )
