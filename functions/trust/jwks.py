"""An issuer's signing keys: discovered, fetched, cached per container, last good kept.

``{issuer}/.well-known/openid-configuration`` names the ``jwks_uri`` (its ``issuer`` must be
the issuer exactly, as OpenID Connect Discovery requires); the JWK Set there holds the keys.
Only issuers some trust policy names are ever fetched (the token route looks the policies up
first), so a token cannot make the function fetch an arbitrary URL.

:class:`IssuerKeys` follows the leak webhook's key cache (functions/webhook/signature.py):

* a fetched key set is trusted for ``ttl_s``; a token naming an unknown ``kid`` triggers an
  early refresh (the issuer rotated its keys), but **at most one refresh per
  ``min_refresh_s``** however many forged key ids arrive (100 forged kids: at most 1 fetch);
* a failed refresh keeps the **last good** set in use (for at most ``max_stale_s``) and backs
  off exponentially (``min_refresh_s``, doubling per failure, up to ``max_backoff_s``):
  while the issuer is down, tokens signed with known keys still verify and nothing is
  fetched until the backoff is over;
* https only, no redirects followed; ``http://`` only for a loopback issuer when the settings
  allow it (``make local`` and the tests).
"""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urlsplit

from functions.common.observability import MetricUnit, logger, metrics
from functions.trust.config import TrustSettings

MAX_DOCUMENT: Final = 256 * 1024
FETCH_TIMEOUT_S: Final = 3.0
MAX_ISSUERS: Final = 64  # issuers cached per container (least recently used dropped)
LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})

Fetch = Callable[[str], bytes]


class KeysUnavailable(Exception):
    """No usable key set for the issuer (never fetched, or the last good one too old)."""

    def __init__(self, message: str, retry_after: float = 60.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is answered as the HTTP error it is


_OPENER: Final = urllib.request.build_opener(_NoRedirect)


def fetch_url(url: str) -> bytes:
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked by allowed_url
        url, headers={"Accept": "application/json", "User-Agent": "tollgate-token-exchange"}
    )
    try:
        with _OPENER.open(request, timeout=FETCH_TIMEOUT_S) as response:
            return bytes(response.read(MAX_DOCUMENT + 1))
    except urllib.error.HTTPError as exc:
        raise OSError(f"HTTP {exc.code} from {urlsplit(url).netloc}") from None


def allowed_url(url: str, allow_http_loopback: bool) -> bool:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return False
    if parts.scheme == "https" and host:
        return True
    return parts.scheme == "http" and host in LOOPBACK and allow_http_loopback


def _json(document: bytes, what: str) -> Any:
    if len(document) > MAX_DOCUMENT:
        raise KeysUnavailable(f"the {what} is too large")
    try:
        return json.loads(document)
    except ValueError:
        raise KeysUnavailable(f"the {what} is not JSON") from None


def parse_jwks(document: bytes) -> dict[str, dict[str, Any]]:
    """``{kid: jwk}`` of the signing keys (RSA and EC; ``use`` absent or ``sig``). A key
    without ``kid`` is kept under ``""`` (usable only by a token without ``kid``)."""
    body = _json(document, "JWK Set")
    entries = body.get("keys") if isinstance(body, dict) else None
    keys: dict[str, dict[str, Any]] = {}
    for jwk in entries if isinstance(entries, list) else []:
        if not isinstance(jwk, dict) or jwk.get("kty") not in ("RSA", "EC"):
            continue
        if jwk.get("use", "sig") != "sig" or "d" in jwk:  # never a private key
            continue
        kid = jwk.get("kid", "")
        if isinstance(kid, str) and kid not in keys:
            keys[kid] = jwk
    if not keys:
        raise KeysUnavailable("the JWK Set holds no usable signing key")
    return keys


class IssuerKeys:
    """One issuer's signing keys by ``kid``: fetched on demand, cached, last good kept."""

    def __init__(
        self,
        issuer: str,
        settings: TrustSettings,
        *,
        fetch: Fetch = fetch_url,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self.settings = settings
        self.min_refresh_s = settings.min_refresh_s
        self.max_backoff_s = max(settings.max_backoff_s, settings.min_refresh_s)
        self._fetch = fetch
        self._clock = clock
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at: float | None = None
        self._next_try = -math.inf
        self._failures = 0
        self.fetches = 0  # refresh attempts (each: discovery + key set), for tests and bench
        self._lock = threading.Lock()

    def get(self, kid: str) -> dict[str, Any] | None:
        """The JWK ``kid`` names (None: unknown). Raises :class:`KeysUnavailable`."""
        with self._lock:
            now = self._clock()
            age = None if self._fetched_at is None else now - self._fetched_at
            wanted = (
                age is None
                or age >= self.settings.jwks_ttl_s
                or (kid not in self._keys and age >= self.min_refresh_s)
            )
            if wanted and now >= self._next_try:
                self._refresh(now)
                age = None if self._fetched_at is None else now - self._fetched_at
            if age is None or age >= self.settings.max_stale_s:
                raise KeysUnavailable(
                    "the issuer's signing keys are unavailable",
                    retry_after=max(1.0, self._next_try - now),
                )
            return self._keys.get(kid)

    def _refresh(self, now: float) -> None:
        self.fetches += 1
        try:
            keys = parse_jwks(self._fetch(self._jwks_uri()))
        except (OSError, KeysUnavailable) as exc:
            self._failures += 1
            backoff = min(self.max_backoff_s, self.min_refresh_s * 2 ** (self._failures - 1))
            self._next_try = now + backoff
            metrics.add_metric(name="TrustKeysFetchFailed", unit=MetricUnit.Count, value=1)
            logger.warning(
                "issuer keys not refreshed; the last good set stays in use",
                extra={
                    "issuer": self.issuer,
                    "error": str(exc)[:200],
                    "failures": self._failures,
                    "next_try_s": round(backoff),
                    "have_keys": bool(self._keys),
                },
            )
            return
        self._keys, self._fetched_at, self._failures = keys, now, 0
        self._next_try = now + self.min_refresh_s

    def _jwks_uri(self) -> str:
        allow = self.settings.allow_http_loopback
        discovery = self.issuer + "/.well-known/openid-configuration"
        if not allowed_url(discovery, allow):
            raise KeysUnavailable("the issuer is not an https URL")
        body = _json(self._fetch(discovery), "discovery document")
        if not isinstance(body, dict) or body.get("issuer") != self.issuer:
            raise KeysUnavailable("the discovery document names another issuer")
        uri = body.get("jwks_uri")
        if not isinstance(uri, str) or not allowed_url(uri, allow):
            raise KeysUnavailable("the discovery document has no https jwks_uri")
        return uri


class Jwks:
    """The key caches of every issuer this container has seen (a bounded LRU)."""

    def __init__(
        self,
        settings: TrustSettings,
        *,
        fetch: Fetch = fetch_url,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._fetch = fetch
        self._clock = clock
        self._issuers: OrderedDict[str, IssuerKeys] = OrderedDict()
        self._lock = threading.Lock()

    def issuer(self, issuer: str) -> IssuerKeys:
        with self._lock:
            found = self._issuers.get(issuer)
            if found is None:
                found = IssuerKeys(issuer, self.settings, fetch=self._fetch, clock=self._clock)
                self._issuers[issuer] = found
                while len(self._issuers) > MAX_ISSUERS:
                    self._issuers.popitem(last=False)
            self._issuers.move_to_end(issuer)
            return found
