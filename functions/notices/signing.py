"""The webhook signature: ``Tollgate-Signature: t=<unix seconds>,v1=<hex>``.

``hex`` is HMAC-SHA256 keyed with the tenant's signing secret (its UTF-8 bytes, ``whsec_``
prefix included) over ``f"{t}.{body}"``, the body being the exact bytes POSTed. The timestamp
inside the signed text lets a receiver refuse replays older than its tolerance. The receiver's
side is the snippet in docs/billing.md ("Verifying a notice"), which a test runs verbatim.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

HEADER: Final = "Tollgate-Signature"
SECRET_PREFIX: Final = "whsec_"  # noqa: S105 -- a prefix, not a secret


def new_secret() -> str:
    """A signing secret: ``whsec_`` and 256 random bits, hex (shown once, at registration)."""
    return SECRET_PREFIX + secrets.token_hex(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The header's value for ``body`` sent at ``timestamp``."""
    signed = str(int(timestamp)).encode() + b"." + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={int(timestamp)},v1={digest}"
