"""Typed errors of the key lifecycle service.

Every error the service raises on purpose is a :class:`KeyServiceError` with a stable
``code`` (for scripts and API bodies) and an HTTP-like ``status`` (for a revoke function).
All of them mean "bad input; nothing was written", except where a docstring says otherwise.
Messages never hold a secret or its hash: they pass through :func:`redact`.
"""

from __future__ import annotations

import re
from typing import Final

# A key (well-formed or not quite) or a 64-hex SHA-256: never echo either.
_SECRETISH: Final = re.compile(r"tg_(?:live|test)_[0-9A-Za-z]*|\b[0-9a-fA-F]{64}\b")
REDACTED: Final = "[redacted]"


def redact(text: str) -> str:
    """``text`` with anything that looks like a secret or a secret hash replaced."""
    return _SECRETISH.sub(REDACTED, text)


def quote(value: object, limit: int = 80) -> str:
    """A user-supplied value, safe to put in a one-line message (redacted, shortened)."""
    text = redact(str(value))
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return repr(text)


class KeyServiceError(Exception):
    """Base of the service's typed errors."""

    code: str = "error"
    status: int = 400

    def __init__(self, message: str) -> None:
        super().__init__(redact(" ".join(message.split())))

    @property
    def message(self) -> str:
        return str(self)


class InvalidInput(KeyServiceError):
    """Malformed or disallowed input: a bad name, scope, duration, price, widening..."""

    code = "invalid_input"
    status = 400


class NotFound(KeyServiceError):
    """An unknown plan, tenant, key or secret."""

    code = "not_found"
    status = 404


class AlreadyExists(KeyServiceError):
    """A plan or tenant with that name already exists."""

    code = "already_exists"
    status = 409


class Conflict(KeyServiceError):
    """The operation does not apply to the item's current state (e.g. reinstating a revoked
    key, rotating a suspended one), or the state changed under us."""

    code = "conflict"
    status = 409
