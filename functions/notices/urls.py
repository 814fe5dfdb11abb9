"""The rules for a tenant's webhook URL (checked when it is registered).

* In AWS (``--stack``): ``https://`` only -- the notice is signed, but its content (usage,
  limits) should not cross networks in clear.
* Locally (``--local``, or an explicit ``AWS_ENDPOINT_URL`` as the tests use): also
  ``http://`` to the loopback host (``127.0.0.1``, ``localhost``, ``[::1]``), for receivers
  running on this machine; plain http to any other host is refused there too.
* Always: a host, no user:password part (it would be a credential stored in clear), no
  fragment, at most 2,048 characters, no whitespace or control characters.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

MAX_LENGTH: Final = 2048
LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})


class InvalidWebhookUrl(ValueError):
    """The URL breaks a rule above; the message says which (and never echoes a password)."""


def check_url(url: str, *, local: bool) -> str:
    """``url`` if it is acceptable, else :class:`InvalidWebhookUrl`."""
    if not isinstance(url, str) or not url:
        raise InvalidWebhookUrl("--url is empty")
    if len(url) > MAX_LENGTH:
        raise InvalidWebhookUrl(f"--url is longer than {MAX_LENGTH} characters")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise InvalidWebhookUrl("--url contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a malformed port
    except ValueError:
        raise InvalidWebhookUrl("--url is not a valid URL") from None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in ("https", "http"):
        raise InvalidWebhookUrl("--url must be an https:// URL")
    if not host:
        raise InvalidWebhookUrl("--url has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhookUrl("--url must not carry a user or password")
    if parts.fragment:
        raise InvalidWebhookUrl("--url must not have a #fragment")
    if port == 0:
        raise InvalidWebhookUrl("--url has port 0")
    if scheme == "http":
        if not local:
            raise InvalidWebhookUrl("--url must be https:// in AWS (http:// only with --local)")
        if host not in LOOPBACK:
            raise InvalidWebhookUrl(
                "--url: http:// is allowed only to 127.0.0.1, localhost or [::1] (with --local)"
            )
    return url
