"""GitHub's secret-scanning signatures: ECDSA P-256 over the raw body, SHA-256.

GitHub sends ``Github-Public-Key-Identifier`` (which of its keys signed) and
``Github-Public-Key-Signature`` (base64 of a DER-encoded ECDSA signature). Its public keys
are published as JSON (``{"public_keys": [{"key_identifier", "key" (PEM), "is_current"}]}``)
at a URL (configurable: tests serve their own list). :class:`PublicKeys` fetches that list
with urllib and caches it per container for a TTL; an unknown identifier triggers one early
refresh (GitHub rotated its key), at most once a minute, so a flood of forged identifiers
cannot make us hammer the key endpoint.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any, Final

MAX_KEYS_DOCUMENT: Final = 1024 * 1024
FETCH_TIMEOUT_S: Final = 3.0


class KeysUnavailable(Exception):
    """GitHub's public keys could not be fetched or read."""


def fetch_url(url: str) -> bytes:
    request = urllib.request.Request(  # noqa: S310 - https (or a test's http) from settings
        url, headers={"Accept": "application/json", "User-Agent": "tollgate-leak-webhook"}
    )
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S) as response:  # noqa: S310
        return bytes(response.read(MAX_KEYS_DOCUMENT + 1))


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
    """GitHub's public keys by identifier, fetched on demand and cached for ``ttl_s``."""

    def __init__(
        self,
        url: str,
        *,
        ttl_s: float = 3600.0,
        min_refresh_s: float = 60.0,
        fetch: Callable[[str], bytes] = fetch_url,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.ttl_s = ttl_s
        self.min_refresh_s = min_refresh_s
        self._fetch = fetch
        self._clock = clock
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    def get(self, identifier: str) -> Any | None:
        """The public key ``identifier`` names, or None. Raises :class:`KeysUnavailable`
        when the list is needed and cannot be fetched."""
        with self._lock:
            now = self._clock()
            age = None if self._fetched_at is None else now - self._fetched_at
            stale = age is None or age >= self.ttl_s
            unknown = identifier not in self._keys
            if stale or (unknown and age is not None and age >= self.min_refresh_s):
                self._refresh(now)
            return self._keys.get(identifier)

    def _refresh(self, now: float) -> None:
        try:
            document = self._fetch(self.url)
        except OSError as exc:  # URLError, timeouts, HTTP errors
            raise KeysUnavailable(f"could not fetch the public key list: {exc}") from None
        self._keys = parse_keys(document)
        self._fetched_at = now


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
