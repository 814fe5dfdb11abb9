"""The issuer key cache (functions/trust/jwks.py) against a real local issuer over HTTP, on a
clock the test moves: no fetch storm on forged key ids, last good keys while the issuer is
down, backoff, discovery rules."""

from __future__ import annotations

import random

import pytest

from functions.trust.config import TrustSettings
from functions.trust.jwks import IssuerKeys, Jwks, KeysUnavailable, parse_jwks
from tollgate.local.oidc import LocalIssuer, running

SETTINGS = TrustSettings(allow_http_loopback=True, jwks_ttl_s=900, min_refresh_s=60,
                         max_backoff_s=900, max_stale_s=86_400)  # fmt: skip


def keys_at(issuer: LocalIssuer, clock: list[float]) -> IssuerKeys:
    return IssuerKeys(issuer.url, SETTINGS, clock=lambda: clock[0])


def test_forged_kids_cause_at_most_one_fetch_per_refresh_interval() -> None:
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    clock = [0.0]
    with running() as issuer:
        keys = keys_at(issuer, clock)
        assert keys.get("rsa-1") is not None and keys.fetches == 1
        for interval in range(5):
            start = 10 + interval * 60
            for _ in range(100):  # 100 forged kids spread over one refresh interval
                clock[0] = start + rng.uniform(0, 59.9)
                assert keys.get(f"forged-{rng.randrange(10**9)}") is None
            assert keys.fetches <= 2 + interval, (interval, keys.fetches)
        assert issuer.hits["/jwks"] == keys.fetches


def test_a_new_key_is_found_after_the_refresh_interval() -> None:
    clock = [0.0]
    with running() as issuer:
        keys = keys_at(issuer, clock)
        assert keys.get("rsa-1") is not None
        issuer.add_key("rsa-2")
        clock[0] = 30
        assert keys.get("rsa-2") is None  # within a minute of the last fetch
        clock[0] = 61
        assert keys.get("rsa-2") is not None


def test_last_good_keys_while_the_issuer_is_down_with_backoff() -> None:
    clock = [0.0]
    with running() as issuer:
        keys = keys_at(issuer, clock)
        assert keys.get("rsa-1") is not None
        issuer.down = True
        for t in range(900, 4000, 10):  # 310 requests over 51 minutes
            clock[0] = t
            assert keys.get("rsa-1") is not None  # last good, every time
        # tried at 900, then backing off 60, 120, 240, 480, 900, 900: at 960, 1080, 1320,
        # 1800, 2700 and 3600 -- 7 fetches, not 310
        assert keys.fetches - 1 == 7
        clock[0] = 900 + SETTINGS.max_stale_s
        with pytest.raises(KeysUnavailable):
            keys.get("rsa-1")  # too old to trust any more
        issuer.down = False
        clock[0] += 900
        assert keys.get("rsa-1") is not None


def test_never_fetched_and_down_is_unavailable() -> None:
    with running() as issuer:
        issuer.down = True
        with pytest.raises(KeysUnavailable):
            keys_at(issuer, [0.0]).get("rsa-1")


def test_http_issuers_only_on_loopback_and_only_when_allowed() -> None:
    with running() as issuer:
        strict = IssuerKeys(issuer.url, TrustSettings(allow_http_loopback=False))
        with pytest.raises(KeysUnavailable):
            strict.get("rsa-1")
        assert issuer.hits == {}  # refused before any request


def test_discovery_naming_another_issuer_is_refused() -> None:
    with running() as issuer:
        keys = IssuerKeys(issuer.url + "/other", SETTINGS)
        with pytest.raises(KeysUnavailable):
            keys.get("rsa-1")


def test_the_cache_holds_a_bounded_number_of_issuers() -> None:
    jwks = Jwks(SETTINGS)
    first = jwks.issuer("https://issuer-0.example")
    for n in range(1, 100):
        jwks.issuer(f"https://issuer-{n}.example")
    assert jwks.issuer("https://issuer-0.example") is not first


def test_key_sets_keep_public_signing_keys_only() -> None:
    doc = (b'{"keys": [{"kty": "RSA", "kid": "a", "n": "x", "e": "AQAB"},'
           b' {"kty": "RSA", "kid": "b", "use": "enc", "n": "x", "e": "AQAB"},'
           b' {"kty": "EC", "kid": "c", "d": "secret", "crv": "P-256", "x": "x", "y": "y"},'
           b' {"kty": "oct", "kid": "d", "k": "c2VjcmV0"}]}')  # fmt: skip
    assert set(parse_jwks(doc)) == {"a"}
    for bad in (b"not json", b"[]", b'{"keys": []}', b'{"keys": "x"}'):
        with pytest.raises(KeysUnavailable):
            parse_jwks(bad)
