"""The leak webhook's logic: check a GitHub secret-scanning report, revoke what it names.

Order, so that a rejected request has no side effect and costs little:

1. size (more than :data:`MAX_BODY` bytes: 413);
2. both signature headers present (else 401 ``signature_required``);
3. the key identifier is one of GitHub's published keys (else 401) and the signature
   verifies over the raw body (else 401 ``invalid_signature``);
4. the body is a JSON list of ``{"token", "type", "url"?, "source"?}`` (else 400);
5. each well-formed Tollgate key that exists is revoked (``actor``
   ``github-secret-scanning``, with its delegated keys) and labelled ``true_positive``;
   anything else is a ``false_positive``. The answer is the partner program's list of
   ``{"token_raw", "token_type", "label"}``.

A token is never logged and never in an error: only counts and key ids are.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from functions.common import keyformat
from functions.keys import NotFound
from functions.keys.errors import redact
from functions.respond.revocation import RevokeRequest
from functions.webhook.signature import PublicKeys, verify

MAX_BODY: Final = 64 * 1024
MAX_TOKENS: Final = 500
ACTOR: Final = "github-secret-scanning"
IDENTIFIER_HEADER: Final = "Github-Public-Key-Identifier"
SIGNATURE_HEADER: Final = "Github-Public-Key-Signature"
TRUE_POSITIVE: Final = "true_positive"
FALSE_POSITIVE: Final = "false_positive"


class WebhookError(Exception):
    """A refused request: ``status``, a stable ``code`` and a message (never a token)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class Reported(BaseModel):
    """One token of a report (GitHub may add fields: they are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    token: str = Field(..., min_length=1, max_length=1024)
    type: str = Field(..., min_length=1, max_length=200)
    url: str | None = Field(None, max_length=2048)
    source: str | None = Field(None, max_length=200)


_REPORT: Final = TypeAdapter(list[Reported])


def authenticate(body: bytes, headers: Mapping[str, str], keys: PublicKeys) -> None:
    """Steps 1-3; raises :class:`WebhookError`."""
    if len(body) > MAX_BODY:
        raise WebhookError(413, "payload_too_large", f"The payload exceeds {MAX_BODY} bytes.")
    identifier = headers.get(IDENTIFIER_HEADER.lower(), "").strip()
    signature = headers.get(SIGNATURE_HEADER.lower(), "").strip()
    if not identifier or not signature:
        raise WebhookError(
            401,
            "signature_required",
            f"Both {IDENTIFIER_HEADER} and {SIGNATURE_HEADER} headers are required.",
        )
    if len(identifier) > 256 or len(signature) > 512:
        raise WebhookError(401, "invalid_signature", "The signature headers are malformed.")
    key = keys.get(identifier)
    if key is None:
        raise WebhookError(401, "unknown_key_identifier", "The signing key is not GitHub's.")
    if not verify(body, signature, key):
        raise WebhookError(401, "invalid_signature", "The signature does not match the payload.")


def parse(body: bytes) -> list[Reported]:
    """Step 4; raises :class:`WebhookError`."""
    try:
        data = json.loads(body)
        reported = _REPORT.validate_python(data)
    except (ValueError, ValidationError):
        raise WebhookError(
            400,
            "invalid_payload",
            'The payload must be a JSON list of {"token", "type", "url", "source"} objects.',
        ) from None
    if len(reported) > MAX_TOKENS:
        raise WebhookError(400, "invalid_payload", f"At most {MAX_TOKENS} tokens per report.")
    return reported


def _reason(item: Reported) -> str:
    where = " ".join(x for x in (item.source, item.url) if x)[:300]
    return redact(f"leaked: reported by GitHub secret scanning {where}".strip())


def label_and_revoke(
    reported: list[Reported], revoke: Callable[[RevokeRequest], Mapping[str, Any]]
) -> tuple[list[dict[str, str]], list[str]]:
    """Step 5: the answer, and the key ids revoked."""
    labels: dict[str, str] = {}
    revoked: list[str] = []
    for item in reported:
        if item.token in labels:
            continue
        label = FALSE_POSITIVE
        if keyformat.parse(item.token) is not None:
            request = RevokeRequest.model_validate(
                {"secret": item.token, "reason": _reason(item), "actor": ACTOR,
                 "include_exposure": False}
            )  # fmt: skip
            try:
                result = revoke(request)
            except NotFound:
                pass  # well-formed, but not one of ours (or a test fixture's)
            else:
                label = TRUE_POSITIVE
                revoked += [k for k in result["revoked"] if k not in revoked]
        labels[item.token] = label
    answer = [
        {"token_raw": item.token, "token_type": item.type, "label": labels[item.token]}
        for item in reported
    ]
    return answer, revoked
