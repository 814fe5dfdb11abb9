"""The Api function's own runtime loop: Lambda's Runtime API, with response streaming.

Lambda's managed Python runtime answers every invocation with one buffered payload; API
Gateway's streaming integration needs the function to *stream* its answer. This loop
replaces the managed runtime's (the function sets ``AWS_LAMBDA_EXEC_WRAPPER`` to
``functions/api/bootstrap``, which execs ``python -m functions.api.runtime``) and speaks the
Runtime API (``/2018-06-01/runtime/...``) itself, with the standard library only:

* ``GET invocation/next`` gives the event and the context headers (request id, deadline,
  function ARN, trace id);
* the handler (``_HANDLER``, ``functions.api.handler.handler``) is called as Lambda would;
* a route the table marks ``streaming`` (functions/common/routes.py: the same flag CDK
  turns into ``responseTransferMode: STREAM``) is answered with ``POST invocation/{id}/
  response`` in *streaming* mode: ``Lambda-Runtime-Function-Response-Mode: streaming``,
  ``Transfer-Encoding: chunked``, ``Content-Type: application/vnd.awslambda.http-
  integration-response``, one HTTP chunk per piece of :func:`functions.api.streaming.
  integration_response` as the handler produces it; a failure after the first byte is
  reported in the trailers ``Lambda-Runtime-Function-Error-Type``/``-Body``;
* any other invocation gets a buffered JSON response, as the managed runtime would give;
* a handler that raises is reported on ``invocation/{id}/error`` (API Gateway: 502).

The same handler, the same integration-response bytes, run in ``make local``: the local
gateway calls the handler and reads :func:`~functions.api.streaming.integration_response`
as API Gateway does. What cannot be checked without an AWS account is listed in
docs/architecture.md, "Streaming".
"""

from __future__ import annotations

import base64
import http.client
import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from functions.api.streaming import CONTENT_TYPE, integration_response
from functions.common.routes import route_for

API_VERSION: Final = "2018-06-01"
Handler = Callable[[dict[str, Any], Any], Any]


class Context:
    """The Lambda context the handler (and Powertools) reads, from the Runtime API's
    headers and the function's environment."""

    def __init__(self, headers: Mapping[str, str], environ: Mapping[str, str]) -> None:
        self.aws_request_id = headers.get("Lambda-Runtime-Aws-Request-Id", "")
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn", "")
        self._deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms") or 0)
        self.function_name = environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or 0)
        self.log_group_name = environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.client_context = None
        self.identity = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def streams(event: Any) -> bool:
    """True when the event came through a streaming route (the route table decides)."""
    if not isinstance(event, dict):
        return False
    route = route_for(str(event.get("httpMethod", "")), str(event.get("resource", "")))
    return route is not None and route.streaming


def error_payload(exc: BaseException) -> dict[str, Any]:
    """What Lambda records for a failed invocation (no message text: it may hold data)."""
    return {"errorType": type(exc).__name__, "errorMessage": "The function failed.",
            "stackTrace": []}  # fmt: skip


class RuntimeApi:
    """One Runtime API endpoint (``AWS_LAMBDA_RUNTIME_API``: host:port)."""

    def __init__(self, address: str) -> None:
        self.address = address

    def _conn(self, timeout: float | None = None) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.address, timeout=timeout)

    def next(self) -> tuple[dict[str, str], Any]:
        conn = self._conn()
        try:
            conn.request("GET", f"/{API_VERSION}/runtime/invocation/next")
            resp = conn.getresponse()
            body = resp.read()
            headers = {k: v for k, v in resp.getheaders()}
        finally:
            conn.close()
        return headers, json.loads(body) if body else None

    def _post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        conn = self._conn()
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()

    def respond(self, request_id: str, result: Any) -> int:
        path = f"/{API_VERSION}/runtime/invocation/{request_id}/response"
        body = json.dumps(result).encode("utf-8")
        return self._post(path, body, {"Content-Type": "application/json"})

    def fail(self, request_id: str, exc: BaseException) -> int:
        path = f"/{API_VERSION}/runtime/invocation/{request_id}/error"
        body = json.dumps(error_payload(exc)).encode("utf-8")
        headers = {"Content-Type": "application/json",
                   "Lambda-Runtime-Function-Error-Type": type(exc).__name__}  # fmt: skip
        return self._post(path, body, headers)

    def fail_init(self, exc: BaseException) -> int:
        body = json.dumps(error_payload(exc)).encode("utf-8")
        headers = {"Content-Type": "application/json",
                   "Lambda-Runtime-Function-Error-Type": "Runtime.InitError"}  # fmt: skip
        return self._post(f"/{API_VERSION}/runtime/init/error", body, headers)

    def stream(self, request_id: str, pieces: Iterable[bytes]) -> int:
        """POST ``pieces`` as a streamed response, one HTTP chunk each, as produced."""
        conn = self._conn()
        source = iter(pieces)
        try:
            conn.putrequest("POST", f"/{API_VERSION}/runtime/invocation/{request_id}/response",
                            skip_accept_encoding=True)  # fmt: skip
            for name, value in (
                ("Content-Type", CONTENT_TYPE),
                ("Lambda-Runtime-Function-Response-Mode", "streaming"),
                ("Transfer-Encoding", "chunked"),
                ("Trailer", "Lambda-Runtime-Function-Error-Type, "
                            "Lambda-Runtime-Function-Error-Body"),
            ):  # fmt: skip
                conn.putheader(name, value)
            conn.endheaders()
            trailers = b""
            try:
                for piece in source:
                    conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            except OSError:
                return 0  # the connection broke; closing the body below bills the call
            except Exception as exc:  # after the first byte: report it in the trailers
                body = base64.b64encode(json.dumps(error_payload(exc)).encode("utf-8"))
                trailers = (
                    b"Lambda-Runtime-Function-Error-Type: " + type(exc).__name__.encode()
                    + b"\r\nLambda-Runtime-Function-Error-Body: " + body + b"\r\n"
                )  # fmt: skip
                traceback.print_exc(file=sys.stderr)
            conn.send(b"0\r\n" + trailers + b"\r\n")
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()  # e.g. the connection broke: the body learns the client is gone
            conn.close()


def load(path: str) -> Handler:
    module, _, attr = path.rpartition(".")
    handler: Handler = getattr(importlib.import_module(module), attr)
    return handler


def invoke_once(api: RuntimeApi, handler: Handler, environ: Mapping[str, str]) -> None:
    """Take one invocation from the Runtime API, run it, answer it."""
    headers, event = api.next()
    context = Context(headers, environ)
    trace = headers.get("Lambda-Runtime-Trace-Id")
    if trace:
        os.environ["_X_AMZN_TRACE_ID"] = trace
    try:
        result = handler(event, context)
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        api.fail(context.aws_request_id, exc)
        return
    if streams(event) and isinstance(result, dict):
        api.stream(context.aws_request_id, integration_response(result))
    else:
        api.respond(context.aws_request_id, result)


def main(environ: Mapping[str, str] | None = None) -> None:  # pragma: no cover - Lambda only
    env = os.environ if environ is None else environ
    api = RuntimeApi(env["AWS_LAMBDA_RUNTIME_API"])
    try:
        handler = load(env.get("_HANDLER") or "functions.api.handler.handler")
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        api.fail_init(exc)
        raise SystemExit(1) from None
    while True:
        invoke_once(api, handler, env)


if __name__ == "__main__":  # pragma: no cover
    main()
