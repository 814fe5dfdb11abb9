"""Turning what the detector reads into its events, in one place for live and backtest.

* a usage event (a DynamoDB stream ``NewImage``, a trace line, a pynamodb item as a dict)
  -> :class:`~functions.detector.logic.Usage`;
* a refusal: a trace line ``{"kind": "refusal", ...}``, or an API Gateway access-log line
  (JSON, ``infra/api.py``'s format) with status 401/403
  -> :class:`~functions.detector.logic.Refusal`.

Anything malformed gives ``None`` (the caller counts and skips it): a bad record must never
block the stream behind it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from functions.detector.logic import Refusal, Usage, normalise_source

REFUSAL_KIND: Final = "refusal"
REFUSED_STATUSES: Final = frozenset({"401", "403"})


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def usage(item: Mapping[str, Any]) -> Usage | None:
    """A usage event from a stored item (plain values; numbers may be Decimal)."""
    key_id = item.get("key_id")
    ts = _int(item.get("ts"), -1)
    if not isinstance(key_id, str) or not key_id or ts < 0:
        return None
    tokens = max(0, _int(item.get("prompt_tokens"))) + max(0, _int(item.get("completion_tokens")))
    plan = item.get("plan")
    return Usage(
        ts=ts,
        key_id=key_id,
        tenant_id=str(item.get("tenant_id") or ""),
        tokens=tokens,
        source=normalise_source(item.get("source_ip")),
        plan=str(plan) if plan else None,
        principal=str(item.get("principal") or ""),
        environment=str(item.get("environment") or ""),
        request_id=str(item.get("request_id") or ""),
    )


def refusal(item: Mapping[str, Any]) -> Refusal | None:
    """A refusal from a trace line."""
    ts = _int(item.get("ts"), -1)
    if ts < 0:
        return None
    fp = item.get("key_fp")
    return Refusal(
        ts=ts,
        source=normalise_source(item.get("source_ip")),
        code=str(item.get("code") or ""),
        fp=str(fp)[:64] if fp else None,
        tenant=str(item.get("tenant_id") or "")[:64],
    )


def trace_event(item: Mapping[str, Any]) -> Usage | Refusal | None:
    """One line of a trace: a usage event, or a refusal (``"kind": "refusal"``)."""
    if item.get("kind") == REFUSAL_KIND:
        return refusal(item)
    return usage(item)


def fingerprint(value: str) -> str:
    """A short, non-reversible fingerprint to count distinct refused keys (never the key or
    its full hash: 8 hex characters of a SHA-256 identify nothing)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:8]


def access_log_refusal(line: Mapping[str, Any], fallback_ts: int) -> Refusal | None:
    """A refusal from an API Gateway access-log line, or None if the request was not refused
    at the gate (only 401 and 403 answered by the gateway count).

    A 403 names the refused key (``keyId``, from the authorizer's context): its id is the
    fingerprint, and ``tenantId`` its tenant (the evidence is about that tenant only); its
    ``decision`` says why (only some decisions are stuffing: ``logic.STUFFING_CODES``). A 401
    names none: the refusal is anonymous (weak evidence), and the authorizer raises 401 only
    for a missing, malformed or unknown key (``invalid_api_key``).
    """
    status = str(line.get("status", ""))
    if status not in REFUSED_STATUSES:
        return None
    if status == "403" and line.get("errorType") not in (None, "", "-", "ACCESS_DENIED"):
        return None  # e.g. a WAF block: not a refused key
    ts = _parse_request_time(line.get("requestTime"))
    key_id = line.get("keyId")
    if status == "401":
        code = "invalid_api_key"
    else:
        decision = line.get("decision")
        code = str(decision) if decision not in (None, "", "-") else "ACCESS_DENIED"
    return Refusal(
        ts=ts if ts is not None else fallback_ts,
        source=normalise_source(line.get("ip")),
        code=code[:64],
        fp=fingerprint(key_id) if isinstance(key_id, str) and key_id not in ("", "-") else None,
        tenant=_named(line.get("tenantId")),
    )


def _named(value: Any) -> str:
    """An access-log field's value, or "" when API Gateway logged none (``-``)."""
    return str(value)[:64] if isinstance(value, str) and value not in ("", "-") else ""


def _parse_request_time(value: Any) -> int | None:
    """API Gateway's ``$context.requestTime`` (``02/Mar/2026:14:23:17 +0000``) in ms."""
    if not isinstance(value, str):
        return None
    try:
        return int(datetime.strptime(value, "%d/%b/%Y:%H:%M:%S %z").timestamp() * 1000)
    except ValueError:
        return None
