"""The signature of threshold notices, checked with the snippet docs/billing.md gives
receivers, run verbatim; and the rules of webhook URLs."""

from __future__ import annotations

import time
from typing import Any

import pytest

from functions.notices.signing import HEADER, SECRET_PREFIX, new_secret, signature
from functions.notices.urls import InvalidWebhookUrl, check_url
from tests.notice_support import verification_snippet


@pytest.fixture(scope="module")
def verify() -> Any:
    namespace: dict[str, Any] = {}
    exec(compile(verification_snippet(), "docs/billing.md", "exec"), namespace)  # noqa: S102
    return namespace["verify"]


def test_the_docs_snippet_accepts_what_tollgate_signs(verify: Any) -> None:
    secret = new_secret()
    body = b'{"id":"ntc_acme_2026-11_tokens_80","type":"usage.threshold"}'
    header = signature(secret, int(time.time()), body)
    assert HEADER == "Tollgate-Signature"
    assert header.startswith("t=") and ",v1=" in header
    assert verify(secret, body, header)


def test_the_docs_snippet_refuses_tampering_other_secrets_and_old_stamps(verify: Any) -> None:
    secret = new_secret()
    body = b'{"used":80}'
    now = int(time.time())
    assert not verify(secret, b'{"used":81}', signature(secret, now, body))
    assert not verify(new_secret(), body, signature(secret, now, body))
    assert not verify(secret, body, signature(secret, now - 3600, body))
    assert not verify(secret, body, "v1=abc")
    assert not verify(secret, body, "garbage")
    # The timestamp is signed: moving it breaks the signature.
    moved = signature(secret, now, body).replace(f"t={now}", f"t={now + 1}")
    assert not verify(secret, body, moved)


def test_the_signature_is_hmac_sha256_of_t_dot_body() -> None:
    import hashlib
    import hmac

    secret, body = "whsec_test", b"{}"
    expected = hmac.new(b"whsec_test", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert signature(secret, 1_700_000_000, body) == f"t=1700000000,v1={expected}"


def test_secrets_are_fresh_and_prefixed() -> None:
    a, b = new_secret(), new_secret()
    assert a != b and a.startswith(SECRET_PREFIX) and len(a) == len(SECRET_PREFIX) + 64


@pytest.mark.parametrize(
    "url",
    ["https://billing.example/hooks", "https://billing.example:8443/h?x=1", "https://[::1]/h"],
)
def test_https_urls_are_accepted_everywhere(url: str) -> None:
    assert check_url(url, local=False) == url
    assert check_url(url, local=True) == url


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/h", "http://localhost/h", "http://[::1]:9/h"]
)
def test_http_to_loopback_only_locally(url: str) -> None:
    assert check_url(url, local=True) == url
    with pytest.raises(InvalidWebhookUrl, match="https"):
        check_url(url, local=False)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("", "empty"),
        ("billing.example/hooks", "https"),
        ("ftp://billing.example/x", "https"),
        ("file:///etc/passwd", "https"),
        ("javascript:alert(1)", "https"),
        ("https://", "no host"),
        ("https:///path", "no host"),
        ("http://billing.example/h", "only to 127.0.0.1"),
        ("http://10.0.0.1/h", "only to 127.0.0.1"),
        ("https://user:pw@billing.example/h", "user or password"),
        ("https://billing.example/h#frag", "fragment"),
        ("https://billing.example:99999/h", "not a valid URL"),
        ("https://billing.example:0/h", "port 0"),
        ("https://billing.example/a b", "whitespace"),
        ("https://billing.example/\x00", "control"),
        ("https://billing.example/" + "a" * 2100, "longer than"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str, why: str) -> None:
    with pytest.raises(InvalidWebhookUrl, match=why) as caught:
        check_url(url, local=True)
    assert "pw" not in str(caught.value)
