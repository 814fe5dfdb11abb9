"""Deliver one notice: POST the signed event to the tenant's URL, retry with backoff, then
record the outcome on the notice (delivered, or failed: a dead letter the CLI lists).

Each attempt is a fresh ``POST`` with the same body and id (receivers dedupe on ``id``),
signed at the time of sending (``t`` changes per attempt), with the settings' timeout for
connecting and reading. A 2xx answer is success; anything else -- another status, a
redirect (never followed: the registered URL is the one that gets the event), a timeout, a
refused connection -- is a failed attempt. After the last attempt the notice is ``failed``
with the last reason; ``tollgate tenants notices TENANT --failed`` lists it and
``tollgate tenants redrive-notices TENANT`` sends it again.

At-least-once on the wire, exactly once in effect: the outcome is recorded only after the
POST; if the function dies between a 2xx and that write, the stream delivers the record
again and the receiver gets the same ``id`` twice. Nothing here logs the secret, the
signature or the URL (it may carry a token): only the tenant, the notice id and the host.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from functions.common.observability import MetricUnit, logger, metrics
from functions.notices.config import NoticeSettings
from functions.notices.signing import HEADER, signature
from functions.notices.store import DELIVERED, FAILED, PENDING, NoticeStore, event_of

USER_AGENT = "Tollgate-Notices/1"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is then raised as an HTTPError: a failed attempt


_opener = urllib.request.build_opener(_NoRedirect)


def body_of(notice: dict[str, Any]) -> bytes:
    """The exact bytes POSTed (and signed): compact JSON, keys in a fixed order."""
    return json.dumps(event_of(notice), separators=(",", ":")).encode()


def post(url: str, body: bytes, secret: str, notice_id: str, timeout_s: float) -> str | None:
    """One attempt: None on a 2xx answer, else why it failed (no URL, no secret in it)."""
    if urlsplit(url).scheme not in ("https", "http"):  # registration allows only these
        return "unsupported URL scheme"
    request = urllib.request.Request(url, data=body, method="POST")  # noqa: S310 -- checked above
    request.add_header("Content-Type", "application/json")
    request.add_header("User-Agent", USER_AGENT)
    request.add_header("Tollgate-Event-Id", notice_id)
    request.add_header(HEADER, signature(secret, int(time.time()), body))
    try:
        with _opener.open(request, timeout=timeout_s) as response:
            response.read(65536)
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return f"HTTP {exc.code}"
    except TimeoutError:
        return f"timed out after {timeout_s:g}s"
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            return f"timed out after {timeout_s:g}s"
        return f"connection failed ({type(exc.reason).__name__})"
    except (OSError, ValueError) as exc:
        return f"connection failed ({type(exc).__name__})"
    return None if 200 <= status < 300 else f"HTTP {status}"


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # delivered | failed | skipped (not pending any more: a replay)
    attempts: int = 0
    error: str | None = None


def deliver(
    store: NoticeStore,
    tenant_id: str,
    sk: str,
    settings: NoticeSettings,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """One delivery round of the notice ``(tenant_id, sk)``; raises only if the table fails
    (the stream then delivers the record again)."""
    notice = store.get_notice(tenant_id, sk)
    if notice is None or notice.get("status") != PENDING:
        return Outcome("skipped")  # delivered or dead-lettered already: a replayed record
    redrives = int(notice.get("redrives") or 0)
    webhook = store.get_webhook(tenant_id)
    if webhook is None or not webhook.get("url") or not webhook.get("secret"):
        missing = "no webhook registered (tollgate tenants set-webhook)"
        store.finish(tenant_id, sk, status=FAILED, attempts=0, redrives=redrives, error=missing)
        _dead_lettered(notice, missing, attempts=0, host=None)
        return Outcome(FAILED, 0, missing)
    url, secret = str(webhook["url"]), str(webhook["secret"])
    body = body_of(notice)
    error: str | None = None
    attempts = 0
    for attempt in range(settings.attempts):
        if attempt:
            sleep(settings.backoff_s * 2 ** (attempt - 1))
        attempts += 1
        error = post(url, body, secret, str(notice["id"]), settings.timeout_s)
        if error is None:
            store.finish(tenant_id, sk, status=DELIVERED, attempts=attempts, redrives=redrives)
            metrics.add_metric(name="NoticesDelivered", unit=MetricUnit.Count, value=1)
            return Outcome(DELIVERED, attempts)
    store.finish(tenant_id, sk, status=FAILED, attempts=attempts, redrives=redrives, error=error)
    _dead_lettered(notice, error, attempts=attempts, host=urlsplit(url).hostname)
    return Outcome(FAILED, attempts, error)


def _dead_lettered(notice: dict[str, Any], error: str | None, *, attempts: int, host: Any) -> None:
    metrics.add_metric(name="NoticesDeadLettered", unit=MetricUnit.Count, value=1)
    logger.warning(
        "threshold notice dead-lettered",
        extra={"tenant_id": notice.get("tenant_id"), "notice_id": notice.get("id"),
               "attempts": attempts, "error": error, "host": host},
    )  # fmt: skip
