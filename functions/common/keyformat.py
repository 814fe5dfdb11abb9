"""The API key format (docs/design.md, "Key format").

``tg_<env>_`` + 32 base62 characters of ``secrets`` randomness (190 bits) + a 6-character
base62 CRC32 of everything before it. The prefix lets secret scanners find leaked keys; the
checksum lets the authorizer drop a mistyped or forged key before any database read.
Keys are looked up by the SHA-256 of the whole key; only that hash is ever stored.
"""

from __future__ import annotations

import hashlib
import secrets
import zlib
from typing import Final, NamedTuple

ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ENVIRONMENTS: Final = ("live", "test")
BODY_LEN: Final = 32  # 32 * log2(62) = 190.5 bits
CHECKSUM_LEN: Final = 6  # 62**6 > 2**32
PREFIX_LEN: Final = len("tg_live_")
KEY_LEN: Final = PREFIX_LEN + BODY_LEN + CHECKSUM_LEN
KEY_ID_PREFIX: Final = "key_"
_ALPHABET_SET: Final = frozenset(ALPHABET)


class ParsedKey(NamedTuple):
    environment: str
    secret_hash: str


def _b62(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 62)
        out.append(ALPHABET[r])
    return "".join(reversed(out))


def checksum(text: str) -> str:
    return _b62(zlib.crc32(text.encode("ascii")), CHECKSUM_LEN)


def _random_b62(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def generate(environment: str) -> str:
    """A new secret for ``environment`` ("live" or "test")."""
    if environment not in ENVIRONMENTS:
        raise ValueError(f"environment must be one of {', '.join(ENVIRONMENTS)}")
    head = f"tg_{environment}_{_random_b62(BODY_LEN)}"
    return head + checksum(head)


def new_key_id() -> str:
    """The public identifier of a key: safe in logs, URLs and audit records."""
    return KEY_ID_PREFIX + _random_b62(16)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def parse(value: object) -> ParsedKey | None:
    """Return the key's environment and hash, or None if it is not a well-formed key.

    Never raises, whatever ``value`` is: the authorizer calls it on raw header values.
    """
    if not isinstance(value, str) or len(value) != KEY_LEN:
        return None
    if not (value.startswith("tg_live_") or value.startswith("tg_test_")):
        return None
    body = value[PREFIX_LEN:]
    if not _ALPHABET_SET.issuperset(body):
        return None
    head, given = value[:-CHECKSUM_LEN], value[-CHECKSUM_LEN:]
    if checksum(head) != given:
        return None
    return ParsedKey(value[3:7], hash_secret(value))


def looks_like_key(value: str) -> bool:
    return parse(value) is not None
