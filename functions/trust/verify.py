"""The checks an OIDC token passes before anything is issued, with PyJWT (requirements.txt).

In this order, each refusal a :class:`TokenError` (an OAuth error, nothing written):

1. size (at most :data:`~functions.trust.config.MAX_TOKEN_BYTES`) and shape (three
   base64url parts, a JSON header);
2. the header's ``alg`` is one of :data:`~functions.trust.config.ALGORITHMS` (asymmetric
   only: ``none`` and ``HS*`` are refused before any key is looked at, so a public key can
   never be used as an HMAC secret);
3. the unverified ``iss`` names an issuer some trust policy trusts (the caller checks, before
   any fetch), and the ``kid`` names one of its current keys (:mod:`functions.trust.jwks`);
   the key's type must fit the algorithm (an RSA key never verifies ES256) and a key that
   declares its ``alg`` is used with that one only;
4. signature, ``iss`` (exact), ``aud`` (one of the policies' audiences), ``exp``, ``nbf``
   and ``iat`` with :data:`~functions.trust.config.CLOCK_SKEW_S` of leeway; ``exp``,
   ``iat``, ``iss``, ``aud`` and ``sub`` are required, ``sub`` must be a string.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from functions.trust.config import ALGORITHMS, CLOCK_SKEW_S, MAX_TOKEN_BYTES


class TokenError(Exception):
    """An OAuth error answer: ``status``, ``error`` (RFC 6749 / 8693 code), description."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


def invalid_grant(description: str) -> TokenError:
    return TokenError("invalid_grant", description)


@dataclass(frozen=True)
class Unverified:
    """What the token says about itself before anything is verified: only used to pick the
    issuer's keys (never trusted for anything else)."""

    alg: str
    kid: str
    issuer: str


def inspect(token: str) -> Unverified:
    """Steps 1 and 2, and the unverified ``iss`` and ``kid``."""
    if len(token.encode("utf-8", "surrogatepass")) > MAX_TOKEN_BYTES:
        raise TokenError("invalid_request", f"subject_token is larger than {MAX_TOKEN_BYTES} bytes")
    if token.count(".") != 2:
        raise invalid_grant("subject_token is not a JWT (three base64url parts)")
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        raise invalid_grant("subject_token is malformed (bad base64url or JSON)") from None
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        shown = alg if isinstance(alg, str) and len(alg) <= 16 else "?"
        raise invalid_grant(
            f"algorithm {shown!r} is not accepted (accepted: {', '.join(ALGORITHMS)})"
        )
    kid = header.get("kid", "")
    if not isinstance(kid, str) or len(kid) > 256:
        raise invalid_grant("the token's kid is not a string")
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not issuer or len(issuer) > 512:
        raise invalid_grant("the token has no iss claim")
    return Unverified(alg=alg, kid=kid, issuer=issuer)


def signing_key(jwk: Mapping[str, Any], alg: str) -> Any:
    """The public key of ``jwk`` for ``alg``; :class:`TokenError` if they do not fit."""
    declared = jwk.get("alg")
    if declared is not None and declared != alg:
        raise invalid_grant(f"the issuer's key {jwk.get('kid', '')!r} is not for {alg}")
    try:
        return jwt.PyJWK(dict(jwk), algorithm=alg).key
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError):
        raise invalid_grant(f"the issuer's key does not fit algorithm {alg}") from None


def verify(
    token: str, seen: Unverified, key: Any, audiences: Iterable[str], leeway: int = CLOCK_SKEW_S
) -> dict[str, Any]:
    """Step 4: the verified claims."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[seen.alg],
            audience=sorted(set(audiences)),
            issuer=seen.issuer,
            leeway=leeway,
            options={"require": ["exp", "iat", "iss", "aud", "sub"], "strict_aud": False},
        )
    except jwt.ExpiredSignatureError:
        raise invalid_grant("the token has expired") from None
    except jwt.ImmatureSignatureError:
        raise invalid_grant("the token is not valid yet (nbf or iat in the future)") from None
    except jwt.InvalidAudienceError:
        raise invalid_grant("no trust policy accepts the token's audience") from None
    except jwt.InvalidIssuerError:
        raise invalid_grant("the token's issuer is not trusted") from None
    except jwt.InvalidSignatureError:
        raise invalid_grant("the token's signature does not verify") from None
    except jwt.MissingRequiredClaimError as exc:
        raise invalid_grant(f"the token has no {exc.claim} claim") from None
    except jwt.InvalidTokenError as exc:
        raise invalid_grant(f"the token is invalid ({type(exc).__name__})") from None
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise invalid_grant("the token's sub claim is not a string")
    return claims


def audiences_of(claims: Mapping[str, Any]) -> set[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return {aud}
    return {a for a in aud if isinstance(a, str)} if isinstance(aud, list) else set()
