"""Lambda entry point of the REQUEST authorizer (thin: parse, decide, shape the policy).

API Gateway lets a REST authorizer answer only 401 (raise "Unauthorized") or 403 (Deny),
so a request over a rate limit or quota is *admitted* with ``verdict`` set in the context;
the managed API answers it 429 with ``Retry-After`` before it touches anything else
(docs/architecture.md, "How 429 reaches the client"). DynamoDB failing makes the handler
raise: API Gateway answers AUTHORIZER_FAILURE, which the stack maps to 503 (fail closed).
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
)

from functions.authorizer import logic, policy
from functions.authorizer.store import Admitted, DependencyError, GateStore
from functions.common.config import TableNames
from functions.common.observability import MetricUnit, log_metrics, logger, metrics
from functions.common.routes import route_for

MAX_ATTEMPTS = 4
_store: GateStore | None = None


def store() -> GateStore:
    global _store
    if _store is None:
        _store = GateStore(TableNames.from_env())
    return _store


class Unauthorized(Exception):
    """Raised with the exact message "Unauthorized": API Gateway then answers 401."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


class AuthorizerUnavailable(Exception):
    """DynamoDB could not answer: API Gateway answers AUTHORIZER_FAILURE (503)."""


def decide(
    event: APIGatewayAuthorizerRequestEvent, now: float
) -> tuple[logic.Decision, dict[str, str]]:
    """The decision and the context facts for one request."""
    route = route_for(event.http_method, event.resource)
    if route is None or not route.authorized:
        return logic.UNKNOWN_ROUTE, {}
    parsed = logic.extract_key(event.headers, event.get("multiValueHeaders"))
    if isinstance(parsed, logic.Decision):
        return parsed, {}
    gate_store = store()
    facts = gate_store.facts(parsed.secret_hash)
    if facts is None:
        return logic.UNKNOWN_KEY, {}
    ctx = {
        "tenant_id": facts.tenant_id,
        "key_id": facts.key_id,
        "principal": facts.principal,
        "parent_key_id": facts.parent_key_id or "",
        "environment": facts.environment,
        "scopes": ",".join(sorted(facts.scopes)),
        "operation": route.operation,
    }
    refusal = logic.check_facts(facts, parsed, route, now)
    if refusal is not None:
        return refusal, ctx
    windows = gate_store.guess_windows(facts, now)
    for _ in range(MAX_ATTEMPTS):
        result = gate_store.admit(facts, route, now, windows)
        if isinstance(result, Admitted):
            item = result.item
            entry = (item.get("gate") or {}).get(facts.key_id, {})
            ctx.update(
                plan=str(item.get("plan", "")),
                month=str(item.get("mo", "")),
                lim_tmo="" if item.get("lim_tmo") is None else str(item["lim_tmo"]),
                budget="" if entry.get("b") is None else str(entry["b"]),
            )
            return logic.ALLOW, ctx
        diagnosis = logic.diagnose(result.old, facts, route, now)
        if isinstance(diagnosis, logic.Decision):
            return diagnosis, ctx
        windows = diagnosis  # a window rolled over (or another request rolled it): retry
    raise DependencyError("gate update kept conflicting")  # pragma: no cover - defensive


def _context(decision: logic.Decision, facts: dict[str, str]) -> dict[str, Any]:
    return {
        **facts,
        "verdict": "allow" if decision.admitted else decision.code,
        "retry_after": str(decision.retry_after),
        "code": decision.code,
        "message": decision.message,
        "type": decision.type,
    }


@log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def handler(raw: dict[str, Any], context: Any) -> dict[str, Any]:
    event = APIGatewayAuthorizerRequestEvent(raw)
    try:
        # Read before the gate counts: nothing after the count may fail (docs/architecture.md).
        arn = policy.method_arn(raw)
    except policy.MalformedMethodArn as exc:
        logger.error("authorizer refused: malformed event", extra={"error": str(exc)})
        raise AuthorizerUnavailable("authorization service unavailable") from None
    try:
        decision, facts = decide(event, time.time())
    except DependencyError as exc:
        logger.error("authorizer refused: dependency failure", extra={"error": str(exc)})
        metrics.add_metric(name="AuthorizerDependencyFailure", unit=MetricUnit.Count, value=1)
        raise AuthorizerUnavailable("authorization service unavailable") from None

    logger.info(
        "authorizer decision",
        extra={
            "decision": decision.kind,
            "reason": decision.code,
            "tenant_id": facts.get("tenant_id"),
            "key_id": facts.get("key_id"),
            "principal": facts.get("principal"),
            "operation": facts.get("operation"),
            "source_ip": (raw.get("requestContext") or {}).get("identity", {}).get("sourceIp"),
        },
    )
    metrics.add_dimension(name="reason", value=decision.code or decision.kind)
    metrics.add_metric(name="AuthorizerDecision", unit=MetricUnit.Count, value=1)

    if decision.kind == "unauthorized":
        raise Unauthorized()
    # This method ARN only, verbatim (functions/authorizer/policy.py): never a wildcard, and
    # no path can make it fail after the gate counted.
    effect: policy.Effect = "Deny" if decision.kind == "deny" else "Allow"
    # Allow also carries a limit verdict, which the API turns into 429.
    return policy.policy(arn, effect, facts.get("key_id", "anonymous"), _context(decision, facts))
