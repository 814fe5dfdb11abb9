"""API Gateway REQUEST-authorizer events, shaped as API Gateway sends them.

``methodArn`` holds the request's own path, every character kept (the local gateway builds it
the same way: ``tollgate.local.gateway.LocalGateway.method_arn``); ``pathParameters`` holds
the values the route's template gives that path."""

from __future__ import annotations

import uuid
from typing import Any

from functions.common.routes import Route, match

API = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod"


def request_event(
    route: Route,
    headers: dict[str, Any] | None = None,
    path: str | None = None,
    multi: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    concrete = path or route.path.replace("{name}", "calculator").replace("{id}", "ftjob-1")
    headers = headers or {}
    matched = match(route.method, concrete)
    params = matched[1] if matched is not None and matched[0] == route else {}
    return {
        "type": "REQUEST",
        "methodArn": f"{API}/{route.method}{concrete}",
        "resource": route.path,
        "path": concrete,
        "httpMethod": route.method,
        "headers": headers,
        "multiValueHeaders": multi
        if multi is not None
        else {k: [v] for k, v in headers.items() if isinstance(v, str)},
        "queryStringParameters": {},
        "pathParameters": params,
        "stageVariables": {},
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "stage": "prod",
            "httpMethod": route.method,
            "resourcePath": route.path,
            "identity": {"sourceIp": "198.51.100.7", "userAgent": "pytest"},
        },
    }


class LambdaContext:
    function_name = "tollgate-authorizer"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:tollgate-authorizer"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
