"""``tollgate keys revoke`` through the revoke function: the deployed one (``--stack``: a
``lambda:InvokeFunction`` on the stack's ``RevokeFunctionName`` output, all a responder's
managed policy grants) or the same handler in this process (``--local``).

The function answers ``{"ok": true, "revoked": [...], ...}`` or a typed error
``{"ok": false, "status", "error": {"code", "message"}}``; a 4xx becomes the CLI's bad-input
exit (2), anything else exit 1. The secret travels in the invocation payload only.
"""

from __future__ import annotations

import json
from typing import Any, Final

from functions.keys.errors import Conflict, InvalidInput, KeyServiceError, NotFound
from tollgate.cli.context import State

OUTPUT: Final = "RevokeFunctionName"
_ERRORS: Final[dict[str, type[KeyServiceError]]] = {
    "invalid_input": InvalidInput,
    "not_found": NotFound,
    "conflict": Conflict,
}


def lambda_client() -> Any:
    import boto3

    return boto3.client("lambda")


def function_name(state: State) -> str:
    name = state.stack_outputs.get(OUTPUT)
    if not name:
        close = [v for k, v in state.stack_outputs.items() if OUTPUT in k]
        if len(close) != 1:
            raise RuntimeError(
                f"stack {state.stack!r} has no output {OUTPUT} (deployed before the revoke "
                "function existed?)"
            )
        name = close[0]
    return name


def invoke(state: State, payload: dict[str, Any], client: Any = None) -> dict[str, Any]:
    """Run the revoke function for ``payload``; its answer without ``ok`` (or raise)."""
    if state.stack:
        lam = client or lambda_client()
        response = lam.invoke(
            FunctionName=function_name(state),
            InvocationType="RequestResponse",
            Payload=json.dumps(payload).encode("utf-8"),
        )
        body = response["Payload"].read()
        if response.get("FunctionError"):
            raise RuntimeError(f"the revoke function failed ({response['FunctionError']})")
        answer = json.loads(body or b"null")
    else:
        from functions.revoke.handler import handle

        answer = handle(payload)
    if not isinstance(answer, dict) or "ok" not in answer:
        raise RuntimeError("the revoke function gave an answer of the wrong shape")
    if not answer["ok"]:
        error = answer.get("error") or {}
        message = str(error.get("message") or "refused")
        status = int(answer.get("status") or 500)
        kind = _ERRORS.get(str(error.get("code")))
        if status < 500:
            raise (kind or InvalidInput)(message)
        raise RuntimeError(message)
    return {k: v for k, v in answer.items() if k != "ok"}
