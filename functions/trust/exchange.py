"""RFC 8693 token exchange: an OIDC token in, a short-lived delegated Tollgate key out.

One exchange, in order (each refusal an OAuth error with nothing issued):

1. the form (:func:`parse_form`): ``grant_type`` is token exchange, ``subject_token_type``
   an ID token (or a JWT), every parameter at most once, no ``actor_token``;
2. the token's shape and algorithm (functions/trust/verify.py), then the **trust policies
   of its (unverified) issuer**: one Query of the ``by_issuer`` index. No policy: refused
   before any fetch, so a token cannot make us fetch a URL nobody trusts;
3. the issuer's key (functions/trust/jwks.py) and the full verification;
4. **the policy**: the active policies of the issuer whose audience is in ``aud``, whose
   subject pattern matches ``sub`` and whose claim conditions all hold (exact string
   equality). None: refused. More than one: refused as ambiguous (an operator must make
   their subjects disjoint); never a guess;
5. **rate limit per issuer and subject**: one conditional ``UpdateItem`` on a counter item of
   the gate table per UTC minute (``functions/gate/items.py``), exact under concurrency;
   over the policy's ``exchanges_per_minute``: 429 ``slow_down`` with ``Retry-After``;
6. **replay bound**: one conditional ``UpdateItem`` on the token's marker (by ``jti``, or the
   token's SHA-256 when it has none), counting its exchanges up to the policy's
   ``max_uses`` (default 1), kept until the token's expiry plus the clock skew (TTL). A
   token is consumed even if the issue below fails (fail closed);
7. **issue**: ``KeyService.delegate_key`` under the policy's root key (its scopes, budget,
   CIDRs, tags, the principal rendered from the claims, expiry = TTL), then an audit record
   ``trust.exchanged`` naming the external identity (issuer, subject, audience, jti digest).

DynamoDB round trips of a successful exchange, counted by bench/trust.py: 1 Query, 2 counter
writes, then ``delegate_key``'s reads and writes and 1 audit write.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import parse_qsl

from pynamodb.exceptions import PynamoDBException

from functions.common import tags as tagrules
from functions.common.models import ACTIVE, TrustPolicy
from functions.gate import items as it
from functions.gate.store import ConditionFailed, DependencyError, call
from functions.keys import KeyService, KeyServiceError
from functions.keys.errors import quote
from functions.keys.trust import plain_map, render_principal, subject_matches
from functions.trust.config import CLOCK_SKEW_S, MAX_FORM_BYTES
from functions.trust.jwks import Jwks, KeysUnavailable
from functions.trust.verify import (
    TokenError,
    audiences_of,
    inspect,
    invalid_grant,
    signing_key,
    verify,
)

GRANT_TYPE: Final = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN: Final = "urn:ietf:params:oauth:token-type:id_token"  # noqa: S105 - a URN
JWT_TOKEN: Final = "urn:ietf:params:oauth:token-type:jwt"  # noqa: S105 - a URN
ACCESS_TOKEN: Final = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105
FORM: Final = "application/x-www-form-urlencoded"
KNOWN_FIELDS: Final = frozenset(
    {"grant_type", "subject_token", "subject_token_type", "requested_token_type", "audience",
     "resource", "scope", "actor_token", "actor_token_type"}
)  # fmt: skip


def invalid_request(description: str) -> TokenError:
    return TokenError("invalid_request", description)


def parse_form(body: bytes, content_type: str | None) -> dict[str, str]:
    """The form's fields; :class:`TokenError` for anything RFC 6749/8693 does not allow."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != FORM:
        raise invalid_request(f"send the request as {FORM}")
    if len(body) > MAX_FORM_BYTES:
        raise invalid_request(f"the request body is larger than {MAX_FORM_BYTES} bytes")
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text),
                          max_num_fields=len(KNOWN_FIELDS))  # fmt: skip
    except (UnicodeDecodeError, ValueError):
        raise invalid_request("the request body is not a well-formed form") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise invalid_request(f"parameter {quote(name, 40)} is given more than once")
        form[name] = value
    grant = form.get("grant_type")
    if not grant:
        raise invalid_request("grant_type is required")
    if grant != GRANT_TYPE:
        raise TokenError("unsupported_grant_type", f"grant_type must be {GRANT_TYPE}")
    if not form.get("subject_token"):
        raise invalid_request("subject_token is required")
    kind = form.get("subject_token_type")
    if kind not in (ID_TOKEN, JWT_TOKEN):
        raise invalid_request(f"subject_token_type must be {ID_TOKEN}")
    if form.get("requested_token_type", ACCESS_TOKEN) != ACCESS_TOKEN:
        raise invalid_request(f"requested_token_type can only be {ACCESS_TOKEN}")
    if "actor_token" in form or "actor_token_type" in form:
        raise invalid_request("actor_token (delegation) is not supported")
    return form


def claims_hold(conditions: Mapping[str, Any] | None, claims: Mapping[str, Any]) -> bool:
    """Every condition's claim is a string equal to its value (exact, case-sensitive)."""
    return all(
        isinstance(claims.get(k), str) and claims[k] == v for k, v in (conditions or {}).items()
    )


def digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


class Exchanger:
    """Exchanges tokens for keys (stateless apart from the key cache and the clock)."""

    def __init__(
        self,
        service: KeyService,
        jwks: Jwks,
        *,
        gate_table: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.service = service
        self.jwks = jwks
        self.gate_table = gate_table or service.gate_table
        self._clock = clock

    def exchange(self, form: Mapping[str, str], source_ip: str | None = None) -> dict[str, Any]:
        """The token response body (RFC 8693 section 2.2.1), or :class:`TokenError`."""
        token = form["subject_token"]
        seen = inspect(token)
        policies = self._policies(seen.issuer)
        if not policies:
            raise invalid_grant(f"no trust policy trusts issuer {quote(seen.issuer, 120)}")
        try:
            jwk = self.jwks.issuer(seen.issuer).get(seen.kid)
        except KeysUnavailable as exc:
            raise TokenError(
                "temporarily_unavailable",
                "the issuer's signing keys cannot be fetched; retry later",
                status=503,
            ) from exc
        if jwk is None:
            raise invalid_grant(f"the issuer has no signing key {quote(seen.kid, 60)}")
        claims = verify(token, seen, signing_key(jwk, seen.alg), {p.audience for p in policies})
        policy = self._select(policies, claims)
        try:
            principal = render_principal(policy.principal_template, claims)
        except KeyServiceError as exc:
            raise invalid_grant(exc.message) from None
        now = self._clock()
        self._count(policy, seen.issuer, claims["sub"], now)
        token_id = self._consume(policy, seen.issuer, token, claims, now)
        try:
            issued = self.service.issue_exchanged_key(
                policy,
                principal=principal,
                tags=self._tags(policy, claims),
                identity={
                    "issuer": seen.issuer,
                    "subject": claims["sub"],
                    "audience": policy.audience,
                    "token_id": token_id,
                    "source_ip": source_ip or "-",
                },
            )
        except KeyServiceError as exc:
            raise invalid_grant(f"the trust policy cannot issue a key now: {exc.message}") from None
        return {
            "access_token": issued["secret"],
            "issued_token_type": ACCESS_TOKEN,
            "token_type": "Bearer",
            # never more than the TTL: the key's expiry is whole seconds from the service's clock
            "expires_in": min(
                int(policy.ttl_seconds), max(0, int(issued["expires_at_epoch"]) - int(now))
            ),
            "key_id": issued["key_id"],
            "scope": " ".join(issued["scopes"]),
        }

    @staticmethod
    def _policies(issuer: str) -> list[TrustPolicy]:
        try:
            found = TrustPolicy.by_issuer.query(issuer)
            return [p for p in found if p.status == ACTIVE]
        except PynamoDBException as exc:
            raise DependencyError(f"DynamoDB query failed: {type(exc).__name__}") from None

    @staticmethod
    def _select(policies: list[TrustPolicy], claims: Mapping[str, Any]) -> TrustPolicy:
        auds = audiences_of(claims)
        matching = [
            p
            for p in policies
            if p.audience in auds
            and subject_matches(p.subject, claims["sub"])
            and claims_hold(plain_map(p.claims), claims)
        ]
        if not matching:
            raise invalid_grant("no trust policy matches the token's audience, subject and claims")
        if len(matching) > 1:
            ids = ", ".join(sorted(p.policy_id for p in matching))
            raise invalid_grant(
                f"the token matches {len(matching)} trust policies ({ids}); an operator must "
                "make their subjects or claim conditions disjoint"
            )
        return matching[0]

    @staticmethod
    def _tags(policy: TrustPolicy, claims: Mapping[str, Any]) -> dict[str, str]:
        """Tags from the policy's claim mapping (the fixed ones are on the root key). A claim
        that is missing, not a string or not a valid tag value is left out, never an error."""
        tags: dict[str, str] = {}
        for tag, claim in plain_map(policy.claim_tags).items():
            value = claims.get(claim)
            if not isinstance(value, str):
                continue
            try:
                key, checked = tagrules.check(tag, value)
            except tagrules.BadTag:
                continue
            tags[key] = checked
        return tags

    def _count(self, policy: TrustPolicy, issuer: str, subject: str, now: float) -> None:
        """Count this exchange in the issuer/subject's current UTC minute (exact)."""
        minute = it.minute_window(now)
        limit = int(policy.exchanges_per_minute)
        try:
            call(
                "update_item",
                once=True,
                TableName=self.gate_table,
                Key=it.exchange_counter_address(digest(issuer, subject), minute),
                UpdateExpression="ADD #c :one SET #t = :ttl",
                ConditionExpression="attribute_not_exists(#c) OR #c < :limit",
                ExpressionAttributeNames={"#c": it.EXCHANGE_COUNT, "#t": it.EXPIRES_AT},
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":limit": {"N": str(limit)},
                    ":ttl": {"N": str((minute + 2) * 60)},
                },
            )
        except ConditionFailed:
            raise TokenError(
                "slow_down",
                f"more than {limit} exchanges this minute for this subject; retry later",
                status=429,
            ) from None

    def _consume(
        self,
        policy: TrustPolicy,
        issuer: str,
        token: str,
        claims: Mapping[str, Any],
        now: float,
    ) -> str:
        """Count one use of the token (by jti, else by its hash), at most ``max_uses``.
        Returns the first 32 hex digits of the marker's digest (for the audit record)."""
        jti = claims.get("jti")
        key = digest("jti", issuer, jti) if isinstance(jti, str) and jti else digest("sha", token)
        exp = claims.get("exp")
        expires = int(exp) if isinstance(exp, int | float) else int(now)
        uses = int(policy.max_uses)
        try:
            call(
                "update_item",
                once=True,
                TableName=self.gate_table,
                Key=it.replay_address(key),
                UpdateExpression="ADD #n :one SET #t = :ttl",
                ConditionExpression="attribute_not_exists(#n) OR #n < :uses",
                ExpressionAttributeNames={"#n": it.EXCHANGE_USES, "#t": it.EXPIRES_AT},
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":uses": {"N": str(uses)},
                    ":ttl": {"N": str(max(expires, int(now)) + CLOCK_SKEW_S + 60)},
                },
            )
        except ConditionFailed:
            times = "once" if uses == 1 else f"{uses} times"
            raise invalid_grant(f"this token was already exchanged ({times} allowed)") from None
        return key[:32]
