"""What the gate decides: one typed decision per outcome, with the OpenAI error it maps to.

Used by the authorizer (which shapes them into a policy and context) and by the gate's own
diagnosis of a failed conditional write (``functions/gate/admission.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from functions.common.routes import Route

Kind = Literal["allow", "unauthorized", "deny", "limit"]


@dataclass(frozen=True)
class Decision:
    kind: Kind
    code: str = ""
    message: str = ""
    type: str = ""
    retry_after: int = 0

    @property
    def admitted(self) -> bool:
        return self.kind == "allow"


ALLOW: Final = Decision("allow", "ok")


def _unauthorized(code: str, message: str) -> Decision:
    return Decision("unauthorized", code, message, "invalid_request_error")


def _deny(code: str, message: str) -> Decision:
    return Decision("deny", code, message, "permission_error")


MISSING_KEY: Final = _unauthorized("missing_api_key", "No API key was sent.")
MALFORMED_KEY: Final = _unauthorized("invalid_api_key", "The API key is malformed.")
UNKNOWN_KEY: Final = _unauthorized("invalid_api_key", "The API key is not known.")
ROTATED_OUT: Final = _unauthorized(
    "invalid_api_key", "The API key was rotated and its grace period is over."
)
UNKNOWN_ROUTE: Final = _deny("unknown_route", "This route does not exist.")
KEY_EXPIRED: Final = _deny("key_expired", "The API key has expired.")
KEY_REVOKED: Final = _deny("key_revoked", "The API key has been revoked.")
KEY_SUSPENDED: Final = _deny("key_suspended", "The API key is suspended.")
PARENT_INACTIVE: Final = _deny(
    "parent_key_inactive", "The key this key was delegated from is no longer active."
)
TENANT_INACTIVE: Final = _deny("tenant_inactive", "The tenant of this API key is not active.")
# keyattrs: the request's source address is outside the key's --allow-cidr networks
SOURCE_NOT_ALLOWED: Final = _deny(
    "source_not_allowed",
    "The API key may not be used from this network address (it is bound to other networks).",
)


def wrong_environment(env: str, route: Route) -> Decision:
    allowed = " or ".join(sorted(route.environments))
    return _deny(
        "wrong_environment", f"A {env} key cannot call {route.operation}; it needs a {allowed} key."
    )


def missing_scope(scope: str) -> Decision:
    return _deny("insufficient_scope", f"The API key lacks the scope {scope}.")


def scope_not_in_plan(scope: str) -> Decision:
    return _deny("scope_not_in_plan", f"The tenant's plan does not include the scope {scope}.")


def rate_limited(retry_after: int) -> Decision:
    return Decision(
        "limit",
        "rate_limit_exceeded",
        "Requests per minute limit reached for this key.",
        "requests",
        retry_after,
    )


def quota_exceeded(retry_after: int, environment: str = "live") -> Decision:
    whose = "test-key " if environment == "test" else ""
    return Decision(
        "limit",
        "quota_exceeded",
        f"Monthly {whose}request quota of the tenant's plan is used up.",
        "insufficient_quota",
        retry_after,
    )


def tokens_exhausted(
    retry_after: int, *, key_budget: bool = False, environment: str = "live"
) -> Decision:
    test = " for test keys" if environment == "test" else ""
    whose = (
        "this delegated key's token budget" if key_budget else f"the tenant's monthly tokens{test}"
    )
    return Decision(
        "limit",
        "insufficient_quota",
        f"No tokens left in {whose}.",
        "insufficient_quota",
        retry_after,
    )


def spend_exhausted(
    retry_after: int, *, key_budget: bool = False, environment: str = "live"
) -> Decision:
    """No money left: the tenant's monthly live spend or a delegated key's spend budget
    (docs/billing.md, "Spend budgets")."""
    whose = "this delegated key's spend budget" if key_budget else "the tenant's monthly spend"
    return Decision(
        "limit",
        "insufficient_quota",
        f"No money left in {whose}.",
        "insufficient_quota",
        retry_after,
    )
