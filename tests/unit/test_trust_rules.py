"""The pure rules of trust policies and the token form (functions/keys/trust.py,
functions/trust/exchange.py): subject globs, principal templates, issuers, claim conditions,
the RFC 8693 form."""

from __future__ import annotations

import pytest

from functions.keys.errors import InvalidInput
from functions.keys.trust import (
    claim_conditions,
    issuer,
    principal_template,
    render_principal,
    subject_matches,
    ttl,
)
from functions.trust.exchange import GRANT_TYPE, ID_TOKEN, claims_hold, parse_form
from functions.trust.verify import TokenError

FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("pattern", "subject", "matches"),
    [
        ("repo:acme/*:ref:refs/heads/main", "repo:acme/app:ref:refs/heads/main", True),
        ("repo:acme/*:ref:refs/heads/main", "repo:acme/a/b:ref:refs/heads/main", True),
        ("repo:acme/*:ref:refs/heads/main", "repo:acme/app:ref:refs/heads/dev", False),
        ("repo:acme/*:ref:refs/heads/main", "repo:ACME/app:ref:refs/heads/main", False),
        ("repo:acme/*:ref:refs/heads/main", "xrepo:acme/app:ref:refs/heads/main", False),
        ("repo:acme/*:ref:refs/heads/main", "repo:acme/app:ref:refs/heads/mainx", False),
        ("agent-?", "agent-7", True),
        ("agent-?", "agent-77", False),
        ("agent-[0-9]", "agent-x", False),
        ("exact", "exact", True),
    ],
)
def test_subject_globs_are_anchored_and_case_sensitive(
    pattern: str, subject: str, matches: bool
) -> None:
    assert subject_matches(pattern, subject) is matches


def test_principal_templates() -> None:
    assert principal_template(None) == "{sub}"
    assert render_principal("gha:{repository}", {"repository": "acme/app"}) == "gha:acme/app"
    assert render_principal("{sub}", {"sub": "system:serviceaccount:ns:sa"}) == (
        "system:serviceaccount:ns:sa"
    )
    for bad in ("{a!r}", "{a:>10}", "x y{sub}", "{", "{0}", "", "a}"):
        with pytest.raises(InvalidInput):
            principal_template(bad)
    for claims in ({}, {"repository": ["a"]}, {"repository": True}, {"repository": "a b"}):
        with pytest.raises(InvalidInput):
            render_principal("gha:{repository}", claims)


def test_issuers() -> None:
    assert issuer("https://token.actions.githubusercontent.com")
    assert issuer("http://127.0.0.1:9000") == "http://127.0.0.1:9000"
    for bad in ("http://example.com", "https://x/", "https://x?a=1", "https://u@x", "x",
                "https://x#f", "https://x:99999"):  # fmt: skip
        with pytest.raises(InvalidInput):
            issuer(bad)
    with pytest.raises(InvalidInput):
        issuer("http://127.0.0.1:9000", allow_http_loopback=False)


def test_ttl_and_claims() -> None:
    assert ttl(None) == 3600 and ttl("12h") == 43200 and ttl("90s") == 90
    for bad in ("13h", "0", 0, 43201):
        with pytest.raises(InvalidInput):
            ttl(bad)
    assert claim_conditions(["environment=prod", "ref=refs/heads/main"]) == {
        "environment": "prod", "ref": "refs/heads/main"}  # fmt: skip
    with pytest.raises(InvalidInput):
        claim_conditions(["a=1", "a=2"])
    assert claims_hold({"environment": "prod"}, {"environment": "prod"})
    assert not claims_hold({"environment": "prod"}, {"environment": "Prod"})
    assert not claims_hold({"run_attempt": "1"}, {"run_attempt": 1})  # strings only
    assert not claims_hold({"x": "1"}, {})


def _form(text: str, content_type: str = FORM) -> dict[str, str]:
    return parse_form(text.encode(), content_type)


def test_the_form() -> None:
    good = f"grant_type={GRANT_TYPE}&subject_token=a.b.c&subject_token_type={ID_TOKEN}"
    assert _form(good)["subject_token"] == "a.b.c"
    assert _form(good, FORM + "; charset=utf-8")["subject_token"] == "a.b.c"
    cases = {
        "": "invalid_request",
        "grant_type=password": "unsupported_grant_type",
        f"grant_type={GRANT_TYPE}": "invalid_request",
        good + "&subject_token=x": "invalid_request",
        good + "&actor_token=x": "invalid_request",
        good.replace(ID_TOKEN, "urn:x"): "invalid_request",
        good + "&" + "&".join(f"f{i}=1" for i in range(20)): "invalid_request",
        "%ZZ=1&&&": "invalid_request",
    }
    for text, error in cases.items():
        with pytest.raises(TokenError) as caught:
            _form(text)
        assert caught.value.error == error, text
    with pytest.raises(TokenError):
        _form(good, "application/json")
    with pytest.raises(TokenError):
        parse_form(b"\xff\xfe", FORM)
