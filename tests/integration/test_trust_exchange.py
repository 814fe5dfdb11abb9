"""``POST /v1/auth/token``: an OIDC token from a local issuer (a real HTTP server, keys made
at test time) exchanged for a short-lived delegated key, through the local gateway (the
route table the stack uses; moto underneath)."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
)
from werkzeug.test import Client

from functions.authorizer import handler as authorizer_handler
from functions.common.models import UsageEvent
from functions.common.routes import route_for
from functions.keys import KeyService
from functions.trust import handler as trust_handler
from functions.trust.config import MAX_TOKEN_BYTES, TrustSettings
from functions.trust.exchange import Exchanger
from functions.trust.jwks import Jwks
from tests.authorizer_events import request_event
from tests.trust_support import AUDIENCE, SUBJECT, chat, exchange, form, policy
from tollgate.local.oidc import LocalIssuer, b64url, running

CHAT = route_for("POST", "/v1/chat/completions")
assert CHAT is not None
Snapshot = Callable[[], dict[str, list[str]]]


def verdict(secret: str, now: float) -> str:
    event = APIGatewayAuthorizerRequestEvent(
        request_event(CHAT, {"Authorization": f"Bearer {secret}"})  # type: ignore[arg-type]
    )
    decision, _ = authorizer_handler.decide(event, now)
    return decision.code if not decision.admitted else "allow"


def test_a_valid_token_gets_a_key_that_works(
    trust_gateway: Client, trust_service: KeyService, oidc_issuer: LocalIssuer
) -> None:
    p = policy(trust_service, oidc_issuer, principal="gha:{repository}",
               claim_tags=["repo=repository"], tags=["team=ml"])  # fmt: skip
    token = oidc_issuer.mint(SUBJECT, AUDIENCE, repository="acme/app")
    status, body = exchange(trust_gateway, token)
    assert status == 200, body
    assert body["token_type"] == "Bearer"
    assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert 3590 <= body["expires_in"] <= 3600
    key = trust_service.get_key(body["key_id"])
    assert key["parent_key_id"] == p["root_key_id"]
    assert key["principal"] == "gha:acme/app"
    assert key["scopes"] == ["inference:invoke"]
    resp = chat(trust_gateway, body["access_token"])
    assert resp.status_code == 200, resp.get_data(as_text=True)
    # attributed to the external subject: the usage event's principal, the audit record
    events = [e for e in UsageEvent.scan() if e.key_id == body["key_id"]]
    assert [e.principal for e in events] == ["gha:acme/app"]
    rows = [
        r for r in trust_service.audit(key_id=body["key_id"]) if r["action"] == "trust.exchanged"
    ]
    assert len(rows) == 1
    assert rows[0]["actor"] == f"oidc:{SUBJECT}"
    details = rows[0]["details"]
    assert details["issuer"] == oidc_issuer.url and details["subject"] == SUBJECT
    assert details["policy_id"] == p["policy_id"]
    assert details["tags"] == {"team": "ml", "repo": "acme/app"}
    assert body["access_token"] not in json.dumps(rows)
    # the ES256 key works as well
    status, body = exchange(trust_gateway, oidc_issuer.mint(SUBJECT, AUDIENCE, kid="ec-1",
                                                            repository="acme/app"))  # fmt: skip
    assert status == 200, body


def _tamper(token: str) -> str:
    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "repo:acme/other:ref:refs/heads/main"
    return f"{head}.{b64url(json.dumps(claims).encode())}.{sig}"


def _bad_tokens(issuer: LocalIssuer, stranger: LocalIssuer) -> dict[str, tuple[str, str]]:
    now = int(time.time())
    good = issuer.claims(SUBJECT, AUDIENCE)
    issuer.add_key("rogue", "RS256", publish=False)
    return {
        "wrong issuer": (stranger.mint(SUBJECT, AUDIENCE), "no trust policy trusts issuer"),
        "wrong audience": (issuer.mint(SUBJECT, "someone-else"), "audience"),
        "wrong subject": (issuer.mint("repo:evil/app:ref:refs/heads/main", AUDIENCE),
                          "no trust policy matches"),
        "expired": (issuer.mint(SUBJECT, AUDIENCE, now=now - 600, lifetime=300), "expired"),
        "not yet valid": (issuer.mint(SUBJECT, AUDIENCE, nbf=now + 600), "not valid yet"),
        "issued in the future": (issuer.mint(SUBJECT, AUDIENCE, iat=now + 600, nbf=None),
                                 "not valid yet"),
        "bad signature": (_tamper(issuer.mint(SUBJECT, AUDIENCE)), "signature"),
        "alg none": (issuer.unsigned(good), "'none' is not accepted"),
        "HS256 with the public key": (issuer.hs256_with_public_key(good),
                                      "'HS256' is not accepted"),
        "unknown kid": (issuer.sign(good, kid="rogue", header_kid="kid-nobody-has"),
                        "no signing key"),
        "known kid, other key": (issuer.sign(good, kid="rogue", header_kid="rsa-1"),
                                 "signature"),
        "RSA kid with ES256": (issuer.sign(good, kid="ec-1", header_kid="rsa-1"), "not for ES256"),
        "oversized": (issuer.mint(SUBJECT, AUDIENCE, pad="x" * MAX_TOKEN_BYTES), "larger than"),
        "malformed base64": ("eyJhbGciOiJSUzI1NiJ9.e$$$.c2ln", "malformed"),
        "not a JWT": ("hello", "not a JWT"),
        "no sub": (issuer.sign({k: v for k, v in good.items() if k != "sub"}), "sub"),
        "no exp": (issuer.mint(SUBJECT, AUDIENCE, exp=None), "exp"),
    }  # fmt: skip


def test_every_bad_token_is_refused_and_nothing_is_issued(
    trust_gateway: Client,
    trust_service: KeyService,
    oidc_issuer: LocalIssuer,
    snapshot: Snapshot,
) -> None:
    policy(trust_service, oidc_issuer)
    with running() as stranger:
        policy(trust_service, oidc_issuer, subject="nothing-matches-this", audience_value="x")
        cases = _bad_tokens(oidc_issuer, stranger)
        # the stranger is trusted by no policy: never fetched
        before = snapshot()
        for name, (token, why) in cases.items():
            status, body = exchange(trust_gateway, token)
            assert status == 400, (name, body)
            assert body["error"] in ("invalid_grant", "invalid_request"), (name, body)
            assert why in body["error_description"], (name, body)
            assert token not in json.dumps(body)
        assert snapshot() == before  # no key, no counter, no replay marker, no audit
        assert stranger.hits == {}


@pytest.mark.parametrize(
    ("fields", "content_type", "error"),
    [
        ({"grant_type": "client_credentials"}, None, "unsupported_grant_type"),
        ({"grant_type": None}, None, "invalid_request"),
        ({"subject_token_type": "urn:ietf:params:oauth:token-type:saml2"}, None,
         "invalid_request"),
        ({"requested_token_type": "urn:ietf:params:oauth:token-type:id_token"}, None,
         "invalid_request"),
        ({"actor_token": "x", "actor_token_type": "y"}, None, "invalid_request"),
        ({}, "application/json", "invalid_request"),
    ],
)  # fmt: skip
def test_bad_forms_get_oauth_errors(
    trust_gateway: Client,
    trust_service: KeyService,
    oidc_issuer: LocalIssuer,
    snapshot: Snapshot,
    fields: dict[str, Any],
    content_type: str | None,
    error: str,
) -> None:
    policy(trust_service, oidc_issuer)
    before = snapshot()
    token = oidc_issuer.mint(SUBJECT, AUDIENCE)
    resp = trust_gateway.post(
        "/v1/auth/token",
        data=form(token, **fields),
        headers={"Content-Type": content_type or "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 400
    assert resp.get_json()["error"] == error
    twice = form(token) + "&grant_type=x"
    resp = trust_gateway.post(
        "/v1/auth/token", data=twice, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert resp.status_code == 400 and "more than once" in resp.get_json()["error_description"]
    assert snapshot() == before


def test_the_key_expires_at_the_policy_ttl(
    trust_gateway: Client, trust_service: KeyService, oidc_issuer: LocalIssuer
) -> None:
    policy(trust_service, oidc_issuer, ttl_value="15m")
    status, body = exchange(trust_gateway, oidc_issuer.mint(SUBJECT, AUDIENCE))
    assert status == 200 and 890 <= body["expires_in"] <= 900
    now = time.time()
    assert verdict(body["access_token"], now) == "allow"
    expires = now + body["expires_in"]
    assert verdict(body["access_token"], expires + 2) == "key_expired"


def test_deleting_the_policy_stops_its_keys_on_the_next_request(
    trust_gateway: Client, trust_service: KeyService, oidc_issuer: LocalIssuer
) -> None:
    p = policy(trust_service, oidc_issuer)
    other = trust_service.create_key("acme")  # not the policy's: untouched
    issued = []
    for _ in range(5):
        status, body = exchange(trust_gateway, oidc_issuer.mint(SUBJECT, AUDIENCE))
        assert status == 200
        issued.append(body)
    assert all(chat(trust_gateway, b["access_token"]).status_code == 200 for b in issued)
    result = trust_service.delete_trust_policy(p["policy_id"], reason="repo compromised",
                                               actor="test:operator")  # fmt: skip
    assert result["status"] == "deleted"
    assert set(result["revoked"]) == {p["root_key_id"], *(b["key_id"] for b in issued)}
    for b in issued:
        resp = chat(trust_gateway, b["access_token"])
        assert resp.status_code == 403
        assert resp.get_json()["error"]["code"] == "key_revoked"
        rows = trust_service.audit(key_id=b["key_id"])
        revoked = [r for r in rows if r["action"] == "key.revoked"]
        assert revoked and revoked[0]["reason"] == "repo compromised"
        assert revoked[0]["details"]["policy_id"] == p["policy_id"]
    assert chat(trust_gateway, other["secret"]).status_code == 200
    status, body = exchange(trust_gateway, oidc_issuer.mint(SUBJECT, AUDIENCE))
    assert status == 400 and body["error"] == "invalid_grant"
    again = trust_service.delete_trust_policy(p["policy_id"], reason="again", actor="t")
    assert again["already_deleted"] is True and again["revoked"] == []


def test_jwks_down_last_good_keys_still_verify(
    trust_gateway: Client, trust_service: KeyService, oidc_issuer: LocalIssuer
) -> None:
    clock = [0.0]  # the key cache's monotonic clock
    settings = TrustSettings(allow_http_loopback=True, jwks_ttl_s=900, min_refresh_s=60)
    trust_handler._exchanger = Exchanger(KeyService(), Jwks(settings, clock=lambda: clock[0]))
    policy(trust_service, oidc_issuer)

    def at(t: float, kid: str = "rsa-1") -> int:
        clock[0] = t
        return exchange(trust_gateway, oidc_issuer.mint(SUBJECT, AUDIENCE, kid=kid))[0]

    def fetches() -> tuple[int, int]:
        return oidc_issuer.hits["/.well-known/openid-configuration"], oidc_issuer.hits["/jwks"]

    assert at(0) == 200 and fetches() == (1, 1)
    oidc_issuer.down = True
    assert at(1000) == 200 and fetches() == (2, 1)  # TTL over, refresh failed: last good
    assert at(1010) == 200 and fetches() == (2, 1)  # backing off (60 s): no fetch
    assert at(1061) == 200 and fetches() == (3, 1)  # tried again, failed: now 120 s
    assert at(1150) == 200 and fetches() == (3, 1)
    oidc_issuer.down = False
    assert at(1182) == 200 and fetches() == (4, 2)  # back: refreshed
    oidc_issuer.add_key("rsa-2", "RS256")  # the issuer rotates
    assert at(1190, "rsa-2") == 400 and fetches() == (4, 2)  # under a minute since: no fetch
    assert at(1243, "rsa-2") == 200 and fetches() == (5, 3)


def test_never_fetched_and_down_is_503_and_nothing_issued(
    trust_gateway: Client, trust_service: KeyService, oidc_issuer: LocalIssuer, snapshot: Snapshot
) -> None:
    policy(trust_service, oidc_issuer)
    oidc_issuer.down = True
    before = snapshot()
    status, body = exchange(trust_gateway, oidc_issuer.mint(SUBJECT, AUDIENCE))
    assert status == 503 and body["error"] == "temporarily_unavailable"
    assert snapshot() == before


def test_forged_kids_cause_at_most_one_fetch_per_refresh_interval(
    trust_gateway: Client, trust_service: KeyService, oidc_issuer: LocalIssuer
) -> None:
    policy(trust_service, oidc_issuer)
    assert exchange(trust_gateway, oidc_issuer.mint(SUBJECT, AUDIENCE))[0] == 200
    oidc_issuer.add_key("forger", "RS256", publish=False)
    claims = oidc_issuer.claims(SUBJECT, AUDIENCE)
    for i in range(100):
        forged = oidc_issuer.sign(claims, kid="forger", header_kid=f"forged-{i}")
        status, body = exchange(trust_gateway, forged)
        assert status == 400 and "no signing key" in body["error_description"]
    assert oidc_issuer.hits["/jwks"] <= 2  # the first fetch, at most one refresh


def test_a_token_is_exchanged_at_most_max_uses_times(
    trust_gateway: Client, trust_service: KeyService, oidc_issuer: LocalIssuer
) -> None:
    policy(trust_service, oidc_issuer)
    token = oidc_issuer.mint(SUBJECT, AUDIENCE)
    assert exchange(trust_gateway, token)[0] == 200
    status, body = exchange(trust_gateway, token)
    assert status == 400 and "already exchanged" in body["error_description"]
    no_jti = oidc_issuer.mint(SUBJECT, AUDIENCE, jti=None)  # bounded by its hash
    assert exchange(trust_gateway, no_jti)[0] == 200
    assert exchange(trust_gateway, no_jti)[0] == 400


def test_max_uses_is_exact_under_concurrency(
    trust_gateway: Client, trust_service: KeyService, oidc_issuer: LocalIssuer
) -> None:
    policy(trust_service, oidc_issuer, max_uses=3)
    token = oidc_issuer.mint(SUBJECT, AUDIENCE)
    assert _concurrently(12, lambda c: exchange(c, token)[0]).count(200) == 3


def _concurrently(n: int, call: Callable[[Client], int]) -> list[int]:
    from tollgate.local.gateway import LocalGateway

    results: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(n)

    def run() -> None:
        client = Client(LocalGateway())
        start.wait()
        code = call(client)
        with lock:
            results.append(code)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_the_rate_limit_per_subject_is_exact(
    trust_gateway: Client, trust_service: KeyService, oidc_issuer: LocalIssuer
) -> None:
    policy(trust_service, oidc_issuer, exchanges_per_minute=4, subject="repo:acme/*")
    minute_start = (int(time.time()) // 60) * 60 + 5  # one fixed minute for the counter
    trust_handler._exchanger = Exchanger(
        KeyService(), Jwks(TrustSettings(allow_http_loopback=True)), clock=lambda: minute_start
    )
    codes = _concurrently(10, lambda c: exchange(c, oidc_issuer.mint("repo:acme/a", AUDIENCE))[0])
    assert sorted(codes) == [200] * 4 + [429] * 6
    status, body = exchange(trust_gateway, oidc_issuer.mint("repo:acme/a", AUDIENCE))
    assert status == 429 and body["error"] == "slow_down"
    # another subject has its own count
    assert exchange(trust_gateway, oidc_issuer.mint("repo:acme/b", AUDIENCE))[0] == 200


def test_claim_conditions_principal_and_ambiguity(
    trust_gateway: Client, trust_service: KeyService, oidc_issuer: LocalIssuer
) -> None:
    policy(trust_service, oidc_issuer, claims=["environment=prod"], principal="ci:{workflow}")
    ok = oidc_issuer.mint(SUBJECT, AUDIENCE, environment="prod", workflow="deploy")
    assert exchange(trust_gateway, ok)[0] == 200
    wrong = oidc_issuer.mint(SUBJECT, AUDIENCE, environment="Prod", workflow="deploy")
    status, body = exchange(trust_gateway, wrong)
    assert status == 400 and "no trust policy matches" in body["error_description"]
    missing = oidc_issuer.mint(SUBJECT, AUDIENCE, environment="prod")
    status, body = exchange(trust_gateway, missing)
    assert status == 400 and "workflow" in body["error_description"]
    policy(trust_service, oidc_issuer, subject="repo:acme/app:*")
    both = oidc_issuer.mint(SUBJECT, AUDIENCE, environment="prod", workflow="deploy")
    status, body = exchange(trust_gateway, both)
    assert status == 400 and "matches 2 trust policies" in body["error_description"]


def test_the_policy_networks_bind_its_keys(
    trust_gateway: Client, trust_service: KeyService, oidc_issuer: LocalIssuer
) -> None:
    """``--allow-cidr`` on a policy: its keys are refused from elsewhere (the local gateway's
    source address is 127.0.0.1), the same keys work from a listed network."""
    far = policy(trust_service, oidc_issuer, allow_cidrs=["203.0.113.0/24"])
    status, body = exchange(trust_gateway, oidc_issuer.mint(SUBJECT, AUDIENCE))
    assert status == 200, body
    assert trust_service.get_key(body["key_id"])["allow_cidrs"] == ["203.0.113.0/24"]
    resp = chat(trust_gateway, body["access_token"])
    assert resp.status_code == 403 and resp.get_json()["error"]["code"] == "source_not_allowed"
    trust_service.delete_trust_policy(far["policy_id"], reason="moved", actor="t")
    policy(trust_service, oidc_issuer, allow_cidrs=["127.0.0.0/8", "::1/128"])
    status, body = exchange(trust_gateway, oidc_issuer.mint(SUBJECT, AUDIENCE))
    assert status == 200 and chat(trust_gateway, body["access_token"]).status_code == 200


def test_the_policy_spend_budget_holds_for_each_issued_key(
    trust_gateway: Client, trust_service: KeyService, oidc_issuer: LocalIssuer
) -> None:
    """``--spend-budget`` on a policy: every exchanged key gets it, and the gate stops the key
    once its money is spent (429 ``insufficient_quota``), never past it."""
    trust_service.create_plan("priced", requests_per_minute=1000, price_per_1k_prompt="1",
                              price_per_1k_completion="1")  # fmt: skip
    trust_service.set_plan("acme", "priced")
    p = policy(trust_service, oidc_issuer, spend_budget_micros=20_000)  # 0.02 USD
    assert p["spend_budget"] == "0.020000" and p["spend_budget_micros"] == 20_000
    status, body = exchange(trust_gateway, oidc_issuer.mint(SUBJECT, AUDIENCE))
    assert status == 200, body
    key = trust_service.get_key(body["key_id"])
    assert key["spend_budget_micros"] == 20_000
    codes = []
    for _ in range(12):
        resp = chat(trust_gateway, body["access_token"])
        codes.append(resp.status_code)
        if resp.status_code == 429:
            assert resp.get_json()["error"]["code"] == "insufficient_quota"
            break
    assert codes[0] == 200 and codes[-1] == 429, codes
    spent = sum(int(e.cost_micros) for e in UsageEvent.scan() if e.key_id == body["key_id"])
    assert 0 < spent <= 20_000
