"""Typed errors of the managed API, each with its HTTP status and OpenAI error body.

The handler maps :class:`ApiError` once (one ``@app.exception_handler``) to
``{"error": {"message", "type", "code", "param"}}``; nothing else turns an error into a
response. Messages never echo request bodies or secrets.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar


class ApiError(Exception):
    """Base of every error the API answers on purpose."""

    status: ClassVar[int] = 400
    type: ClassVar[str] = "invalid_request_error"
    code: ClassVar[str] = "invalid_request"
    default_message: ClassVar[str] = "The request was refused."

    def __init__(
        self, message: str | None = None, *, param: str | None = None, retry_after: int = 0
    ) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.param = param
        self.retry_after = retry_after

    @property
    def error_type(self) -> str:
        return self.type

    @property
    def error_code(self) -> str:
        return self.code

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "code": self.error_code,
                "param": self.param,
            }
        }

    def json(self) -> str:
        return json.dumps(self.body())

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after > 0 else {}


# -- 400 -------------------------------------------------------------------------------------
class InvalidRequest(ApiError):
    """The body (or a parameter) is malformed. Nothing is recorded: no usage event."""

    code = "invalid_request"
    default_message = "The request body is not valid."


class ModelNotSupported(InvalidRequest):
    """The model exists and the key may use it, but not for this operation (e.g. a chat
    model asked for embeddings). Checked before anything is reserved."""

    code = "model_not_supported"


class ToolFailed(ApiError):
    """A tool ran and could not compute a result for valid input (e.g. division by zero)."""

    code = "tool_error"
    default_message = "The tool could not compute a result."


class ProviderRejected(ApiError):
    """The model provider refused the request as invalid."""

    code = "model_rejected_request"
    default_message = "The model provider rejected the request."


# -- 401 / 403 -------------------------------------------------------------------------------
class NotAuthorized(ApiError):
    """No authorizer context: the request did not come through the gate. Fail closed."""

    status = 401
    code = "invalid_api_key"
    default_message = "The request carries no authorization."


class PermissionDenied(ApiError):
    status = 403
    type = "permission_error"
    code = "permission_denied"
    default_message = "This key may not do that."


class WrongEnvironment(PermissionDenied):
    code = "wrong_environment"


class MissingScope(PermissionDenied):
    code = "insufficient_scope"


class TestKeyModel(PermissionDenied):
    """A test key asked for a model other than tollgate-echo (test keys never reach a paid
    model; docs/cli.md and the README)."""

    code = "model_not_allowed_for_test_key"
    default_message = "Test keys can only use the model tollgate-echo."


class ToolNotAllowed(PermissionDenied):
    code = "tool_not_allowed"
    default_message = "The tenant's plan does not include this tool."


class TenantUnavailable(PermissionDenied):
    code = "tenant_inactive"
    default_message = "The tenant of this API key is not active."


# -- 404 -------------------------------------------------------------------------------------
class NotFound(ApiError):
    status = 404
    code = "not_found"
    default_message = "Not found."


class ModelNotFound(NotFound):
    code = "model_not_found"


class ToolNotFound(NotFound):
    code = "tool_not_found"


class JobNotFound(NotFound):
    code = "fine_tuning_job_not_found"


class RouteNotFound(NotFound):
    default_message = "Unknown route."


# -- 429 -------------------------------------------------------------------------------------
class InsufficientQuota(ApiError):
    """The request's worst case does not fit the tenant's monthly tokens or the key's budget."""

    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"
    default_message = "Not enough tokens left for this request."


class LimitVerdict(ApiError):
    """The authorizer's refusal verdict (rate limit, quota, tokens), answered as 429."""

    status = 429

    def __init__(self, message: str, *, type_: str, code: str, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self._type = type_
        self._code = code

    @property
    def error_type(self) -> str:
        return self._type

    @property
    def error_code(self) -> str:
        return self._code


# -- 5xx -------------------------------------------------------------------------------------
class ProviderError(ApiError):
    """The provider failed after it may have run the model (an unreadable answer, a stream
    cut halfway): its usage is unknown, so the call is billed at its reservation's upper
    bound (functions/api/chat.py, "Accounting")."""

    status = 502
    type = "server_error"
    code = "provider_error"
    default_message = "The model provider failed."


class ProviderUnreachable(ProviderError):
    """The provider was never reached, or refused Tollgate's credentials: nothing ran, the
    reservation is released."""


class ModelUnavailable(ApiError):
    status = 503
    type = "server_error"
    code = "model_unavailable"
    default_message = "The model is unavailable; retry later."

    def __init__(self, message: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(message, retry_after=retry_after)


class ProviderTimeout(ApiError):
    status = 504
    type = "server_error"
    code = "provider_timeout"
    default_message = "The model provider did not answer in time."


class ServiceUnavailable(ApiError):
    """A dependency (DynamoDB) failed: refuse, never guess (fail closed)."""

    status = 503
    type = "server_error"
    code = "service_unavailable"
    default_message = "The service is unavailable; retry later."

    def __init__(self, message: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(message, retry_after=retry_after)


class InternalError(ApiError):
    """An unexpected failure (a bug): answered without a stack trace, logged in full."""

    status = 500
    type = "server_error"
    code = "internal_error"
    default_message = "Internal error."
