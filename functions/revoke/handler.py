"""Lambda entry point of the revoke function (thin: validate, revoke, shape the answer).

Input (the invocation payload)::

    {"key_id": "key_..."}                      one key
    {"secret": "tg_live_..."}                  the key of a leaked secret
    {"tenant_id": "acme"}                      every key of a tenant
    {"tenant_id": "acme", "principal": "bot"}  every key of a principal in a tenant
    + "reason": "...", "actor": "..."          both required

Every key delegated from a revoked key is revoked too; revoking again is harmless.

Output: ``{"ok": true, "revoked": [...], "via": ..., "exposure": [...], ...}``, or
``{"ok": false, "status": 400|404|409|500, "error": {"code", "message", "type"}}``: a
typed error, never a stack trace; bad input writes nothing. No secret is ever in the answer
or the logs (the secret is a ``SecretStr`` from the moment it is parsed).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from functions.common.observability import MetricUnit, log_metrics, logger, metrics
from functions.keys import KeyServiceError
from functions.respond.config import ResponderSettings
from functions.respond.events import EventPublisher
from functions.respond.revocation import RevokeRequest, describe, revoke


def error(status: int, code: str, message: str) -> dict[str, Any]:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"code": code, "message": message, "type": kind}
    return {"ok": False, "status": status, "error": body}


def handle(event: Any, settings: ResponderSettings | None = None) -> dict[str, Any]:
    """The function's logic without Lambda's decorators (the CLI's --local calls it too)."""
    if not isinstance(event, dict):
        return error(400, "invalid_input", "the payload must be a JSON object")
    try:
        request = RevokeRequest.model_validate(event)
    except ValidationError as exc:
        return error(400, "invalid_input", describe(exc))
    try:
        bus = (settings or ResponderSettings.from_env()).event_bus
        result = revoke(request, publisher=EventPublisher(bus))
    except KeyServiceError as exc:
        return error(exc.status, exc.code, exc.message)
    except Exception as exc:
        logger.error("revocation failed", extra={"error": type(exc).__name__, "via": request.via})
        metrics.add_metric(name="RevokeFailed", unit=MetricUnit.Count, value=1)
        return error(
            500,
            "internal_error",
            "The revocation did not complete. Run it again: revoking is idempotent.",
        )
    logger.info(
        "revoked",
        extra={"via": request.via, "revoked": result["revoked"], "actor": request.actor},
    )
    metrics.add_metric(name="KeysRevoked", unit=MetricUnit.Count, value=len(result["revoked"]))
    return {"ok": True, **result}


@log_metrics
@logger.inject_lambda_context
def handler(event: Any, context: Any) -> dict[str, Any]:
    return handle(event)
