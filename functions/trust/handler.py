"""Lambda entry point of ``POST /v1/auth/token`` (thin: the form in, the OAuth answer out).

No API key (this is how a key is obtained) and no key authorizer: the route sits behind the
WAF (infra/api.py) and the exchange checks the OIDC token itself (functions/trust/). Errors
are OAuth error bodies (RFC 6749 section 5.2: ``{"error", "error_description"}``); every
answer carries ``Cache-Control: no-store``. Neither the subject token nor the issued secret
is ever logged: the log names the issuer, subject and policy of a success, and the error
code of a refusal.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException

from functions.common.observability import MetricUnit, log_metrics, logger, metrics
from functions.gate.store import DependencyError
from functions.keys import KeyService
from functions.trust.config import MAX_FORM_BYTES, TrustSettings
from functions.trust.exchange import Exchanger, parse_form
from functions.trust.jwks import Jwks
from functions.trust.verify import TokenError

_exchanger: Exchanger | None = None


def exchanger() -> Exchanger:
    """One per container: the issuers' keys stay cached between requests."""
    global _exchanger
    if _exchanger is None:
        _exchanger = Exchanger(KeyService(), Jwks(TrustSettings.from_env()))
    return _exchanger


def reset() -> None:
    """Forget the cached keys and settings (tests and ``make local``)."""
    global _exchanger
    _exchanger = None


def _response(status: int, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {
            "Content-Type": "application/json",
            "Cache-Control": "no-store",
            "Pragma": "no-cache",
            **headers,
        },
        "body": json.dumps(body),
    }


def _error(exc: TokenError, retry_after: int | None = None) -> dict[str, Any]:
    headers = {"Retry-After": str(retry_after)} if retry_after else {}
    return _response(
        exc.status, {"error": exc.error, "error_description": exc.description}, **headers
    )


def _body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if not isinstance(body, str) or len(body) > 2 * MAX_FORM_BYTES:
        raise TokenError("invalid_request", "the request body is too large or not text")
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise TokenError("invalid_request", "the request body is not valid base64") from None
    return body.encode("utf-8", "surrogatepass")


def _content_type(event: dict[str, Any]) -> str | None:
    for name, value in (event.get("headers") or {}).items():
        if isinstance(name, str) and name.lower() == "content-type" and isinstance(value, str):
            return value
    return None


@log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    source_ip = ((event.get("requestContext") or {}).get("identity") or {}).get("sourceIp")
    try:
        form = parse_form(_body(event), _content_type(event))
        answer = exchanger().exchange(form, source_ip=source_ip)
    except TokenError as exc:
        logger.info("token exchange refused", extra={"error": exc.error, "why": exc.description})
        metrics.add_dimension(name="outcome", value=exc.error)
        metrics.add_metric(name="TokenExchange", unit=MetricUnit.Count, value=1)
        return _error(exc, retry_after=60 if exc.status in (429, 503) else None)
    except (DependencyError, PynamoDBException, BotoCoreError, ClientError) as exc:
        # DynamoDB failed (the gate's calls, or the key service's through pynamodb): refused,
        # nothing issued -- a key half-written is never usable (functions/keys/lifecycle.py)
        logger.error("token exchange failed: dependency", extra={"error": str(exc)[:200]})
        metrics.add_metric(name="TokenExchangeDependencyFailure", unit=MetricUnit.Count, value=1)
        return _error(TokenError("temporarily_unavailable", "storage unavailable; retry", 503), 1)
    logger.info("token exchanged", extra={"key_id": answer["key_id"]})
    metrics.add_dimension(name="outcome", value="issued")
    metrics.add_metric(name="TokenExchange", unit=MetricUnit.Count, value=1)
    return _response(200, answer)
