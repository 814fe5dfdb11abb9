"""Key lifecycle: plans, tenants, keys (create, delegate, rotate, revoke, suspend, reinstate)
and the audit trail. No CLI or Lambda code here: the ``tollgate`` CLI, the local stack and
the responder functions all call :class:`KeyService`."""

from functions.keys.errors import (
    AlreadyExists,
    Conflict,
    InvalidInput,
    KeyServiceError,
    NotFound,
)
from functions.keys.service import KeyService, default_actor

__all__ = [
    "AlreadyExists",
    "Conflict",
    "InvalidInput",
    "KeyService",
    "KeyServiceError",
    "NotFound",
    "default_actor",
]
