"""A lazily built low-level DynamoDB client and DynamoDB-JSON conversion for hot paths.

The hot paths (authorizer, API) talk to DynamoDB through botocore directly: ``import
botocore.session`` costs about two thirds of ``import boto3`` (measured: bench/), and
their expressions on the nested gate map are clearer written out than through an ORM.
boto3's ``TypeSerializer``/``TypeDeserializer`` would pull in boto3, so the few lines that
convert plain values are here (strings, numbers, bools, None, lists, maps).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

_client: Any = None
_client_once: Any = None

# How long a request may wait for DynamoDB's answer. A timed-out counting write is ambiguous
# (it may have been applied), so it is refused and counted: fail closed, never over-admit.
# 5 s is far above DynamoDB's latency; the test suite raises it (tests/conftest.py) because
# there a loaded 2-core machine queueing 32 clients on one moto server can take that long,
# and an exactness test's count must not depend on the machine's speed.
READ_TIMEOUT_S: float = 5.0

# Errors with which DynamoDB says the request was NOT applied: safe to send again.
NOT_APPLIED: frozenset[str] = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)


def client() -> Any:
    """The process's DynamoDB client (built on first use; honours AWS_ENDPOINT_URL*)."""
    global _client
    if _client is None:
        _client = _build(retries={"max_attempts": 3, "mode": "standard"})
    return _client


def client_once() -> Any:
    """A client that sends each request once: for writes that must not be applied twice.

    botocore retries a 500 or a lost answer, and a write DynamoDB had applied is then applied
    again: harmless for an idempotent write, wrong for ``SET n = n + :delta``. Use
    :func:`send_once` with it.
    """
    global _client_once
    if _client_once is None:
        _client_once = _build(retries={"total_max_attempts": 1})
    return _client_once


def send_once(operation: str, attempts: int = 3, **kwargs: Any) -> Any:
    """Send a non-idempotent write; retry only when DynamoDB said it was not applied.

    An ambiguous failure (a 500, a timeout, a lost connection) is raised to the caller, which
    must treat the write as possibly applied.
    """
    import time

    from botocore.exceptions import ClientError

    for attempt in range(attempts):
        try:
            return getattr(client_once(), operation)(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code not in NOT_APPLIED or attempt == attempts - 1:
                raise
            time.sleep(0.025 * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _build(retries: dict[str, Any]) -> Any:
    import botocore.config
    import botocore.session

    return botocore.session.get_session().create_client(
        "dynamodb",
        config=botocore.config.Config(
            retries=retries,
            connect_timeout=2,
            read_timeout=READ_TIMEOUT_S,
            tcp_keepalive=True,
            # One request at a time per Lambda container; the local gateway and the
            # concurrency tests share one client across dozens of threads.
            max_pool_connections=64,
        ),
    )


def reset_client() -> None:
    """Forget the client (tests point the process at another endpoint)."""
    global _client, _client_once
    _client = None
    _client_once = None


def to_ddb(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float | Decimal):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, dict):
        return {"M": {k: to_ddb(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [to_ddb(v) for v in value]}
    raise TypeError(f"cannot store a {type(value).__name__} in DynamoDB")


def from_ddb(value: dict[str, Any]) -> Any:
    ((kind, raw),) = value.items()
    if kind == "S":
        return raw
    if kind == "N":
        return int(raw) if raw.lstrip("-").isdigit() else float(raw)
    if kind == "BOOL":
        return raw
    if kind == "NULL":
        return None
    if kind == "M":
        return {k: from_ddb(v) for k, v in raw.items()}
    if kind == "L":
        return [from_ddb(v) for v in raw]
    if kind == "SS":
        return set(raw)
    if kind == "NS":
        return {int(n) if n.lstrip("-").isdigit() else float(n) for n in raw}
    raise TypeError(f"unsupported DynamoDB type {kind}")


def item_from_ddb(item: dict[str, Any]) -> dict[str, Any]:
    return {k: from_ddb(v) for k, v in item.items()}
