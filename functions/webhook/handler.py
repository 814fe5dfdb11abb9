"""Lambda entry point of the leak webhook, ``POST /webhooks/github/secret-scanning``
(thin: raw body and headers in, :mod:`functions.webhook.logic`, a JSON answer out).

No API key: GitHub signs the request instead. Errors use the OpenAI-style body the rest of
the API answers with; nothing is written before the signature has been verified. A signed
report processed before (same body) is answered again from what was remembered, without
revoking or auditing again (``functions/webhook/replays.py``).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException

from functions.common.observability import MetricUnit, log_metrics, logger, metrics
from functions.gate.store import DependencyError as GateUnavailable
from functions.keys import KeyServiceError
from functions.respond.config import ResponderSettings
from functions.respond.events import EventPublisher
from functions.respond.revocation import RevokeRequest, revoke
from functions.webhook.config import WebhookSettings, token_from_secret
from functions.webhook.logic import (
    MAX_BODY,
    TRUE_POSITIVE,
    Reported,
    WebhookError,
    authenticate,
    label_and_revoke,
    parse,
)
from functions.webhook.replays import FALSE, TRUE, Replays, report_id
from functions.webhook.signature import KeysUnavailable, PublicKeys

_keys: PublicKeys | None = None
_settings: ResponderSettings | None = None
_webhook: WebhookSettings | None = None


def settings() -> ResponderSettings:
    global _settings
    if _settings is None:
        _settings = ResponderSettings.from_env()
    return _settings


def webhook_settings() -> WebhookSettings:
    global _webhook
    if _webhook is None:
        _webhook = WebhookSettings.from_env()
    return _webhook


def public_keys() -> PublicKeys:
    """GitHub's public keys, cached in this container (last good kept, fetches backed off)."""
    global _keys
    if _keys is None:
        s, w = settings(), webhook_settings()
        token = token_from_secret(w.github_token_secret) if w.github_token_secret else None
        _keys = PublicKeys(s.github_keys_url, ttl_s=s.github_keys_ttl_s, token=token)
    return _keys


def reset() -> None:
    """Forget settings and cached keys (tests and ``make local`` point the function elsewhere)."""
    global _keys, _settings, _webhook
    _keys = _settings = _webhook = None


def _response(status: int, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "body": json.dumps(body),
    }


def _error(status: int, code: str, message: str, **headers: str) -> dict[str, Any]:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return _response(status, {"error": {"message": message, "type": kind, "code": code}}, headers)


def _raw_body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if not isinstance(body, str):
        raise WebhookError(400, "invalid_payload", "The payload must be JSON text.")
    if len(body) > 2 * MAX_BODY:  # decoding more than this is never needed to refuse it
        raise WebhookError(413, "payload_too_large", f"The payload exceeds {MAX_BODY} bytes.")
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise WebhookError(400, "invalid_payload", "The payload is not valid base64.") from None
    return body.encode("utf-8")


def _headers(event: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in (event.get("headers") or {}).items():
        if isinstance(name, str) and isinstance(value, str):
            out[name.lower()] = value
    return out


def _replayed(reported: list[Reported], labels: str) -> list[dict[str, str]] | None:
    """The answer to a report processed before, from its remembered labels."""
    if len(labels) != len(reported) or set(labels) - {TRUE, FALSE}:
        return None
    return [
        {"token_raw": item.token, "token_type": item.type,
         "label": TRUE_POSITIVE if mark == TRUE else "false_positive"}
        for item, mark in zip(reported, labels, strict=True)
    ]  # fmt: skip


def handle(event: dict[str, Any]) -> dict[str, Any]:
    try:
        body = _raw_body(event)
        authenticate(body, _headers(event), public_keys())
        reported = parse(body)
        rid = report_id(body)
        replays = Replays(webhook_settings().replay_ttl_s)
        remembered = replays.seen(rid)
        again = _replayed(reported, remembered) if remembered is not None else None
        if again is not None:
            logger.info("leak report seen before: acknowledged, nothing done again")
            metrics.add_metric(name="LeakReportReplayed", unit=MetricUnit.Count, value=1)
            return _response(200, again)
        bus = EventPublisher(settings().event_bus)
        answer, revoked = label_and_revoke(reported, lambda r: revoke(r, publisher=bus))
    except WebhookError as exc:
        logger.warning("leak report refused", extra={"status": exc.status, "code": exc.code})
        metrics.add_metric(name="LeakReportRefused", unit=MetricUnit.Count, value=1)
        return _error(exc.status, exc.code, exc.message)
    except KeysUnavailable as exc:
        logger.error("GitHub public keys unavailable", extra={"error": str(exc)})
        retry = str(max(1, math.ceil(exc.retry_after)))
        return _error(
            503, "keys_unavailable", "Cannot verify signatures now.", **{"Retry-After": retry}
        )
    except KeyServiceError as exc:  # e.g. a key changed while revoking: GitHub retries
        logger.error("leak report not fully processed", extra={"code": exc.code})
        return _error(503, "try_again", "The report was not fully processed; send it again.")
    except (PynamoDBException, ClientError, BotoCoreError, GateUnavailable) as exc:
        # DynamoDB failed (through pynamodb, botocore or the gate's own calls): retryable
        logger.error(
            "leak report not processed: storage failed", extra={"error": type(exc).__name__}
        )
        return _error(
            503, "service_unavailable", "The report was not processed; send it again.",
            **{"Retry-After": "1"},
        )  # fmt: skip
    positives = sum(1 for a in answer if a["label"] == TRUE_POSITIVE)
    if positives:  # a report that named none of our keys wrote nothing: nothing to dedupe
        replays.remember(rid, "".join(TRUE if a["label"] == TRUE_POSITIVE else FALSE
                                      for a in answer))  # fmt: skip
    logger.warning(
        "leak report processed",
        extra={"tokens": len(answer), "true_positives": positives, "revoked": revoked},
    )
    metrics.add_metric(name="LeakedKeysReported", unit=MetricUnit.Count, value=len(answer))
    metrics.add_metric(name="LeakedKeysRevoked", unit=MetricUnit.Count, value=len(revoked))
    return _response(200, answer)


@log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(event)


__all__ = ["RevokeRequest", "handler", "reset"]
