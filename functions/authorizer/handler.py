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
from functions.common.config import TableNames
from functions.common.observability import MetricUnit, log_metrics, logger, metrics
from functions.common.routes import route_for
from functions.gate.contract import GateContext
from functions.gate.store import Admission, DependencyError, GateStore

_store: GateStore | None = None


def store() -> GateStore:
    global _store
    if _store is None:
        tables = TableNames.from_env()
        _store = GateStore(tables.secrets, tables.gate)
    return _store


class Unauthorized(Exception):
    """Raised with the exact message "Unauthorized": API Gateway then answers 401."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


class AuthorizerUnavailable(Exception):
    """DynamoDB could not answer: API Gateway answers AUTHORIZER_FAILURE (503)."""


def source_ip(event: APIGatewayAuthorizerRequestEvent) -> object:
    """API Gateway's ``requestContext.identity.sourceIp`` as given (the peer it saw; never a
    client-written header such as X-Forwarded-For). Checked by ``functions/gate/sources.py``,
    which refuses a missing or malformed one for a key bound to networks."""
    context = event.get("requestContext")
    identity = context.get("identity") if isinstance(context, dict) else None
    return identity.get("sourceIp") if isinstance(identity, dict) else None


def decide(
    event: APIGatewayAuthorizerRequestEvent, now: float
) -> tuple[logic.Decision, GateContext]:
    """The decision and the context facts for one request."""
    route = route_for(event.http_method, event.resource)
    if route is None or not route.authorized:
        return logic.UNKNOWN_ROUTE, GateContext()
    parsed = logic.extract_key(event.headers, event.get("multiValueHeaders"))
    if isinstance(parsed, logic.Decision):
        return parsed, GateContext()
    gate_store = store()
    facts = gate_store.facts(parsed.secret_hash)
    if facts is None:
        return logic.UNKNOWN_KEY, GateContext()
    ctx = GateContext(
        tenant_id=facts.tenant_id,
        key_id=facts.key_id,
        principal=facts.principal,
        parent_key_id=facts.parent_key_id or "",
        environment=facts.environment,
        scopes=",".join(sorted(facts.scopes)),
        operation=route.operation,
        tags=facts.tags,
    )
    refusal = logic.check_facts(facts, parsed, route, now)
    if refusal is not None:
        return refusal, ctx
    result = gate_store.admit(facts, route, now, source_ip(event))
    if not isinstance(result, Admission):
        return result, ctx
    shard, key = result.shard_item, result.key_item
    return result.decision, ctx.with_decision(
        plan=str(shard.get("pl", "")),
        month=str(shard.get("mo", "")),
        shard=int(shard.get("ix") or 0),
        token_alloc=-1 if shard.get("ta") is None else int(shard["ta"]),
        budget=-1 if key.get("b") is None else int(key["b"]),
        spend_alloc=-1 if shard.get("sa") is None else int(shard["sa"]),
        spend_budget=-1 if key.get("sb") is None else int(key["sb"]),
    )


def _context(decision: logic.Decision, ctx: GateContext) -> dict[str, Any]:
    return ctx.with_decision(
        verdict="allow" if decision.admitted else decision.code,
        retry_after=decision.retry_after,
        code=decision.code,
        message=decision.message,
        type=decision.type,
    ).to_context()


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
            "tenant_id": facts.tenant_id or None,
            "key_id": facts.key_id or None,
            "principal": facts.principal or None,
            "operation": facts.operation or None,
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
    return policy.policy(arn, effect, facts.key_id or "anonymous", _context(decision, facts))
