"""GitHub's secret-scanning signatures: ECDSA P-256 over the raw body, SHA-256.

GitHub sends ``Github-Public-Key-Identifier`` (which of its keys signed) and
``Github-Public-Key-Signature`` (base64 of a DER-encoded ECDSA signature). Its public keys
are published as JSON (``{"public_keys": [{"key_identifier", "key" (PEM), "is_current"}]}``)
at a URL (configurable: tests and ``make local`` serve their own list).

:class:`PublicKeys` fetches that list with urllib and caches it per container:

* a fetched list is trusted for ``ttl_s``; an unknown identifier triggers an early refresh
  (GitHub rotated its key), but never more than one fetch per ``min_refresh_s``, however many
  forged identifiers arrive;
* a failed fetch keeps the **last good** list in use (for at most ``max_stale_s``) and backs
  off exponentially (``min_refresh_s``, then twice as long each failure, up to
  ``max_backoff_s``): while GitHub is unreachable or rate-limits us, requests are answered from
  the last good list and do not fetch at all until the backoff is over;
* with a GitHub token (``token``: read from Secrets Manager by the handler) the fetch is
  authenticated (``Authorization: Bearer``), which raises GitHub's rate limit for our address
  from 60 to 5,000 an hour; a token GitHub refuses is dropped and the fetch retried without
  it. The token is never logged nor put in an error.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, Final

from functions.common.observability import MetricUnit, logger, metrics

MAX_KEYS_DOCUMENT: Final = 1024 * 1024
FETCH_TIMEOUT_S: Final = 3.0


class KeysUnavailable(Exception):
    """GitHub's public keys could not be fetched or read, and no good list is at hand.
    ``retry_after``: seconds until the next fetch will be tried."""

    def __init__(self, message: str, retry_after: float = 60.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TokenRefused(Exception):
    """GitHub refused the token the fetch was authenticated with (401)."""


Fetch = Callable[[str, str | None], bytes]


def fetch_url(url: str, token: str | None = None) -> bytes:
    """GET the key list; ``token`` (if any) as ``Authorization: Bearer``."""
    headers = {"Accept": "application/json", "User-Agent": "tollgate-leak-webhook"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - https (or local http)
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S) as response:  # noqa: S310
            return bytes(response.read(MAX_KEYS_DOCUMENT + 1))
    except urllib.error.HTTPError as exc:
        if token and exc.code == 401:
            raise TokenRefused(f"HTTP {exc.code}") from None
        raise OSError(f"HTTP {exc.code} from the key list") from None


def parse_keys(document: bytes) -> dict[str, Any]:
    """``{key_identifier: public key}`` from GitHub's key list (P-256 keys only)."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    if len(document) > MAX_KEYS_DOCUMENT:
        raise KeysUnavailable("the public key list is too large")
    try:
        entries = json.loads(document)["public_keys"]
    except (ValueError, KeyError, TypeError):
        raise KeysUnavailable("the public key list is not the expected JSON") from None
    keys: dict[str, Any] = {}
    for entry in entries if isinstance(entries, list) else []:
        try:
            identifier, pem = str(entry["key_identifier"]), str(entry["key"])
            key = load_pem_public_key(pem.encode("ascii"))
        except (KeyError, TypeError, ValueError, UnicodeError):
            continue
        if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
            keys[identifier] = key
    if not keys:
        raise KeysUnavailable("the public key list holds no usable P-256 key")
    return keys


class PublicKeys:
    """GitHub's public keys by identifier: fetched on demand, cached, last good kept."""

    def __init__(
        self,
        url: str,
        *,
        ttl_s: float = 3600.0,
        min_refresh_s: float = 60.0,
        max_backoff_s: float = 900.0,
        max_stale_s: float = 7 * 86_400.0,
        fetch: Fetch = fetch_url,
        token: Callable[[], str | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.ttl_s = ttl_s
        self.min_refresh_s = min_refresh_s
        self.max_backoff_s = max(max_backoff_s, min_refresh_s)
        self.max_stale_s = max_stale_s
        self._fetch = fetch
        self._token = token
        self._token_refused = False
        self._clock = clock
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None  # the last good fetch
        self._next_try: float = -math.inf  # no fetch before this time
        self._failures = 0
        self.fetches = 0  # attempts, for tests and metrics
        self._lock = threading.Lock()

    def get(self, identifier: str) -> Any | None:
        """The public key ``identifier`` names, or None. Raises :class:`KeysUnavailable`
        when no usable list is at hand (never fetched, or the last good one is too old)."""
        with self._lock:
            now = self._clock()
            age = None if self._fetched_at is None else now - self._fetched_at
            wanted = (
                age is None
                or age >= self.ttl_s
                or (identifier not in self._keys and age >= self.min_refresh_s)
            )
            if wanted and now >= self._next_try:
                self._refresh(now)
                age = None if self._fetched_at is None else now - self._fetched_at
            if age is None or age >= self.max_stale_s:
                raise KeysUnavailable(
                    "no usable public key list", retry_after=max(1.0, self._next_try - now)
                )
            return self._keys.get(identifier)

    def _refresh(self, now: float) -> None:
        self.fetches += 1
        try:
            document = self._get_document()
            keys = parse_keys(document)
        except (OSError, KeysUnavailable) as exc:
            self._failures += 1
            backoff = min(self.max_backoff_s, self.min_refresh_s * 2 ** (self._failures - 1))
            self._next_try = now + backoff
            metrics.add_metric(name="GitHubKeysFetchFailed", unit=MetricUnit.Count, value=1)
            logger.warning(
                "GitHub public keys not refreshed; the last good list stays in use",
                extra={
                    "error": str(exc)[:200],
                    "failures": self._failures,
                    "next_try_s": round(backoff),
                    "have_keys": bool(self._keys),
                },
            )
            return
        self._keys, self._fetched_at, self._failures = keys, now, 0
        self._next_try = now + self.min_refresh_s

    def _get_document(self) -> bytes:
        token = None
        if self._token is not None and not self._token_refused:
            token = self._token()
        try:
            return self._fetch(self.url, token)
        except TokenRefused:
            self._token_refused = True  # until the container is replaced: log once, go on
            logger.error("GitHub refused the configured token; fetching without it")
            metrics.add_metric(name="GitHubTokenRefused", unit=MetricUnit.Count, value=1)
            return self._fetch(self.url, None)


def verify(body: bytes, signature_b64: str, public_key: Any) -> bool:
    """True if ``signature_b64`` (base64 DER ECDSA) signs ``body`` (SHA-256)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        signature = base64.b64decode(signature_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    if not signature:
        return False
    try:
        public_key.verify(signature, body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True
