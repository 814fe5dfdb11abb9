"""Trust policies: which external (OIDC) identities may exchange their token for a short-lived
key of a tenant (``POST /v1/auth/token``, functions/trust/), and what that key may do.

How a policy is built on what already exists:

* it **owns a root key** of its tenant (principal ``trust:<policy_id>``, the policy's scopes
  and environment, no expiry). Its secret is never shown nor kept: nobody can call the API
  with it. Every exchanged key is a **delegated key** of that root
  (:meth:`~functions.keys.lifecycle.LifecycleMixin.delegate_key`), so its scopes never widen,
  its gate item lives in the root's partition and its usage events carry the parent;
* **deleting a policy** marks it deleted (no more exchanges), then revokes the root's gate
  item and every *unexpired* child's gate item (one strongly consistent Query of the root's
  partition, then one ``UpdateItem`` each, in parallel), so every key the policy issued is
  refused on its very next request, before the command returns. Expired children are left
  alone: their expiry refuses them already. Then the ``Key`` records and one audit record
  per revoked key. The work is bounded by the keys issued within one TTL (at most 12 h),
  never by the tenant's or the policy's history.

Subject patterns are anchored, case-sensitive globs (:func:`fnmatch.fnmatchcase`): ``*``
matches any run of characters, ``/`` and ``:`` included, ``?`` one character, ``[...]`` a
set. ``repo:acme/*:ref:refs/heads/main`` matches every repository of ``acme`` on ``main``.
"""

from __future__ import annotations

import fnmatch
import re
import secrets
import string
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

from pynamodb.exceptions import DoesNotExist, PutError, UpdateError

from functions.common import tags as tagrules
from functions.common.models import ACTIVE, REVOKED, Key, TrustPolicy
from functions.gate import admin as gate
from functions.keys import rules
from functions.keys.audit import AuditMixin, default_actor
from functions.keys.base import _conditional_failed, log
from functions.keys.durations import format_duration, parse_duration
from functions.keys.errors import Conflict, InvalidInput, NotFound, quote
from functions.keys.lifecycle import LifecycleMixin
from functions.keys.views import iso
from functions.pricing.money import usd

DELETED: Final = "deleted"
POLICY_PREFIX: Final = "tp_"
POLICY_ID: Final = re.compile(r"tp_[0-9a-z]{16}")
MAX_TTL: Final = 12 * 3600
DEFAULT_TTL: Final = "1h"
MAX_USES: Final = 100
MAX_EXCHANGES_PER_MINUTE: Final = 100_000
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})
CLAIM_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}")
MAX_VALUE: Final = 256
CASCADE_WORKERS: Final = 8
MAX_ACTOR_LEN: Final = rules.MAX_ACTOR
_ALPHABET: Final = string.ascii_lowercase + string.digits


def new_policy_id() -> str:
    return POLICY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(16))


def root_principal(policy_id: str) -> str:
    return f"trust:{policy_id}"


# -- input rules -------------------------------------------------------------------------


def policy_id(value: str) -> str:
    if not isinstance(value, str) or not POLICY_ID.fullmatch(value):
        raise InvalidInput(f"bad trust policy id {quote(value)}: expected tp_ and 16 characters")
    return value


def issuer(value: str, *, allow_http_loopback: bool = True) -> str:
    """An OIDC issuer URL as the token's ``iss`` says it: ``https://host[/path]``, or
    ``http://`` on a loopback address (a local issuer, ``make local`` and tests), no query,
    fragment or credentials, no trailing slash."""
    text = value.strip() if isinstance(value, str) else ""
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise InvalidInput(f"bad issuer {quote(value)}: not a URL") from None
    if len(text) > 512 or not host or parts.query or parts.fragment or parts.username:
        raise InvalidInput(
            f"bad issuer {quote(value)}: use https://host[/path], no query or fragment"
        )
    if text.endswith("/"):
        raise InvalidInput(f"bad issuer {quote(value)}: no trailing slash (as in the token's iss)")
    if parts.scheme == "https":
        return text
    if parts.scheme == "http" and host in LOOPBACK_HOSTS and allow_http_loopback:
        return text
    raise InvalidInput(
        f"bad issuer {quote(value)}: must be https (http only for a local issuer on 127.0.0.1)"
    )


def _printable(name: str, value: str, limit: int = MAX_VALUE) -> str:
    if not isinstance(value, str) or not value or len(value) > limit or not value.isprintable():
        raise InvalidInput(f"bad {name} {quote(value)}: 1-{limit} printable characters")
    return value


def audience(value: str) -> str:
    text = _printable("audience", value.strip() if isinstance(value, str) else value)
    if any(c.isspace() for c in text):
        raise InvalidInput(f"bad audience {quote(value)}: no whitespace")
    return text


def subject_pattern(value: str) -> str:
    return _printable("subject pattern", value.strip() if isinstance(value, str) else value, 512)


def subject_matches(pattern: str, subject: str) -> bool:
    """Anchored, case-sensitive glob (see the module docstring)."""
    return fnmatch.fnmatchcase(subject, pattern)


def pairs(name: str, values: Iterable[str] | Mapping[str, str] | None) -> dict[str, str]:
    """``["k=v", ...]`` (or a mapping) -> ``{k: v}``; keys unique."""
    if values is None:
        return {}
    items = list(values.items()) if isinstance(values, Mapping) else []
    if not isinstance(values, Mapping):
        for raw in values:
            k, sep, v = str(raw).partition("=")
            if not sep:
                raise InvalidInput(f"bad {name} {quote(raw)}: use NAME=VALUE")
            items.append((k.strip(), v.strip()))
    out: dict[str, str] = {}
    for k, v in items:
        if k in out:
            raise InvalidInput(f"{name} {quote(k)} given twice")
        out[k] = v
    return out


def claim_conditions(values: Iterable[str] | Mapping[str, str] | None) -> dict[str, str]:
    found = pairs("--claim", values)
    for k, v in found.items():
        if not CLAIM_NAME.fullmatch(k):
            raise InvalidInput(f"bad claim name {quote(k)}")
        _printable(f"value of claim {k}", v)
    return found


def claim_tag_pairs(values: Iterable[str] | Mapping[str, str] | None) -> dict[str, str]:
    """``tag=claim``: each issued key gets tag ``tag`` with the token's ``claim`` value."""
    found = pairs("--claim-tag", values)
    for tag, claim in found.items():
        if not tagrules.TAG_KEY.fullmatch(tag):
            raise InvalidInput(f"bad tag key {quote(tag)}: use only {tagrules.KEY_CHARS}")
        if not CLAIM_NAME.fullmatch(claim):
            raise InvalidInput(f"bad claim name {quote(claim)}")
    return found


def principal_template(value: str | None) -> str:
    """``{claim}`` placeholders (no format specs) and principal characters around them."""
    text = "{sub}" if value is None else value.strip()
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError:
        raise InvalidInput(f"bad principal template {quote(value)}: unbalanced braces") from None
    if not parsed:
        raise InvalidInput("the principal template is empty")
    for literal, field, spec, conversion in parsed:
        if literal and not rules.PRINCIPAL.fullmatch(literal):
            raise InvalidInput(
                f"bad principal template {quote(value)}: only A-Z a-z 0-9 _ . @ : / - "
                "around {claim} placeholders"
            )
        if field is not None and (spec or conversion or not CLAIM_NAME.fullmatch(field)):
            raise InvalidInput(f"bad principal template {quote(value)}: use {{claim}} only")
    return text


def render_principal(template: str, claims: Mapping[str, Any]) -> str:
    """The template filled with the token's claims. :class:`InvalidInput` if a claim is
    missing, not a string or number, or the result is not a valid principal."""
    out = []
    for literal, field, _spec, _conv in string.Formatter().parse(template):
        out.append(literal)
        if field is None:
            continue
        value = claims.get(field)
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise InvalidInput(f"the token has no string claim {quote(field)} for the principal")
        out.append(str(value))
    return rules.principal("".join(out))


def ttl(value: int | str | None) -> int:
    if value is None:
        value = DEFAULT_TTL
    if isinstance(value, bool):
        raise InvalidInput("the TTL must be a duration such as 1h")
    seconds = value if isinstance(value, int) else parse_duration(value)
    if seconds <= 0 or seconds > MAX_TTL:
        raise InvalidInput("the TTL of exchanged keys must be more than 0 and at most 12h")
    return seconds


def bounded(name: str, value: int | None, default: int, high: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise InvalidInput(f"{name} must be a whole number from 1 to {high}")
    return value


# -- views -------------------------------------------------------------------------------


def policy_view(p: TrustPolicy) -> dict[str, Any]:
    return {
        "policy_id": p.policy_id,
        "tenant_id": p.tenant_id,
        "status": p.status,
        "issuer": p.issuer,
        "audience": p.audience,
        "subject": p.subject,
        "claims": plain_map(p.claims),
        "principal": p.principal_template,
        "scopes": sorted(p.scopes or []),
        "environment": p.environment,
        "ttl": format_duration(int(p.ttl_seconds)),
        "ttl_seconds": int(p.ttl_seconds),
        "token_budget": None if p.token_budget is None else int(p.token_budget),
        "spend_budget": None if p.spend_budget_micros is None else usd(int(p.spend_budget_micros)),
        "spend_budget_micros": (
            None if p.spend_budget_micros is None else int(p.spend_budget_micros)
        ),
        "allow_cidrs": None if p.allow_cidrs is None else list(p.allow_cidrs),
        "tags": plain_map(p.tags),
        "claim_tags": plain_map(p.claim_tags),
        "max_uses": int(p.max_uses),
        "exchanges_per_minute": int(p.exchanges_per_minute),
        "root_key_id": p.root_key_id,
        "created_at": p.created_at,
        "deleted_at": p.deleted_at,
        "status_reason": p.status_reason,
    }


def as_map(value: Any) -> dict[str, Any] | None:
    return dict(value) if value else None


def plain_map(value: Any) -> dict[str, str]:
    """A stored map attribute (a ``MapAttribute`` or a dict, as pynamodb hands it) as a
    plain ``{str: str}``."""
    if value is None:
        return {}
    if hasattr(value, "as_dict"):
        value = value.as_dict()
    return {str(k): str(v) for k, v in value.items()}


class TrustMixin(LifecycleMixin, AuditMixin):
    """Create, list, show and delete trust policies (the exchange itself: functions/trust/)."""

    def create_trust_policy(
        self,
        tenant_id: str,
        *,
        issuer_url: str,
        audience_value: str,
        subject: str,
        claims: Iterable[str] | Mapping[str, str] | None = None,
        principal: str | None = None,
        scopes: Iterable[str] | None = None,
        environment: str = "live",
        ttl_value: int | str | None = None,
        token_budget: int | None = None,
        spend_budget_micros: int | None = None,
        allow_cidrs: Iterable[str] | None = None,
        tags: Iterable[str] | Mapping[str, str] | None = None,
        claim_tags: Iterable[str] | Mapping[str, str] | None = None,
        max_uses: int | None = None,
        exchanges_per_minute: int | None = None,
        allow_http_loopback: bool = True,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Check everything, issue the policy's root key, store the policy, audit."""
        rules.tenant_id(tenant_id)
        rules.environment(environment)
        values: dict[str, Any] = {
            "issuer": issuer(issuer_url, allow_http_loopback=allow_http_loopback),
            "audience": audience(audience_value),
            "subject": subject_pattern(subject),
            "claims": claim_conditions(claims),
            "principal_template": principal_template(principal),
            "ttl_seconds": ttl(ttl_value),
            "token_budget": rules.token_budget(token_budget),
            "spend_budget_micros": rules.spend_budget_micros(spend_budget_micros),
            "allow_cidrs": rules.allow_cidrs(None if allow_cidrs is None else list(allow_cidrs)),
            "tags": rules.tags(tags),
            "claim_tags": claim_tag_pairs(claim_tags),
            "max_uses": bounded("--max-uses", max_uses, 1, MAX_USES),
            "exchanges_per_minute": bounded(
                "--exchanges-per-minute", exchanges_per_minute, 60, MAX_EXCHANGES_PER_MINUTE
            ),
        }
        if len(values["tags"]) + len(values["claim_tags"]) > tagrules.MAX_TAGS:
            raise InvalidInput(f"at most {tagrules.MAX_TAGS} tags and claim tags together")
        who = rules.actor(actor or default_actor())
        pid = new_policy_id()
        # Checks the tenant (active) and the scopes (within its plan) before any write.
        root = self.create_key(
            tenant_id,
            environment=environment,
            principal=root_principal(pid),
            scopes=None if scopes is None else list(scopes),
            actor=who,
            # inherited by every exchanged key (delegation may only narrow them)
            allow_cidrs=values["allow_cidrs"],
            tags=values["tags"] or None,
        )
        root.pop("secret", None)  # never shown, never kept: the root key is the policy's
        policy = TrustPolicy(
            policy_id=pid,
            tenant_id=tenant_id,
            issuer=values["issuer"],
            audience=values["audience"],
            subject=values["subject"],
            claims=as_map(values["claims"]),
            principal_template=values["principal_template"],
            scopes=list(root["scopes"]),
            environment=environment,
            token_budget=values["token_budget"],
            spend_budget_micros=values["spend_budget_micros"],
            ttl_seconds=values["ttl_seconds"],
            allow_cidrs=values["allow_cidrs"],
            tags=as_map(values["tags"]),
            claim_tags=as_map(values["claim_tags"]),
            max_uses=values["max_uses"],
            exchanges_per_minute=values["exchanges_per_minute"],
            root_key_id=root["key_id"],
            status=ACTIVE,
            created_at=iso(self.now()),
        )
        try:
            policy.save(condition=TrustPolicy.policy_id.does_not_exist())
        except PutError as exc:
            self._revoke_tree(root["key_id"], tenant_id, "trust policy not stored", who, pid)
            if _conditional_failed(exc):
                raise Conflict("a trust policy id collided; try again") from None
            raise
        view = policy_view(policy)
        self._audit(
            "trust.created",
            tenant_id=tenant_id,
            key_id=root["key_id"],
            actor=who,
            details={k: v for k, v in view.items() if k not in ("status_reason", "deleted_at")},
        )
        log.info("trust policy %s created for tenant %s", pid, tenant_id)
        return view

    def list_trust_policies(self, tenant_id: str) -> list[dict[str, Any]]:
        tenant = self._tenant(tenant_id)
        found = TrustPolicy.by_tenant.query(tenant.tenant_id)
        return [policy_view(p) for p in sorted(found, key=lambda p: (p.created_at, p.policy_id))]

    def get_trust_policy(self, policy_id_value: str) -> dict[str, Any]:
        return policy_view(self._trust_policy(policy_id_value))

    @staticmethod
    def _trust_policy(value: str) -> TrustPolicy:
        policy_id(value)
        try:
            return TrustPolicy.get(value, consistent_read=True)
        except DoesNotExist:
            raise NotFound(f"unknown trust policy {quote(value)}") from None

    def delete_trust_policy(
        self, policy_id_value: str, *, reason: str, actor: str | None = None
    ) -> dict[str, Any]:
        """Stop the policy and every key it issued (their very next request is refused).

        Idempotent: deleting a deleted policy finishes what an interrupted deletion left
        (the revocations are idempotent) and reports ``already_deleted``."""
        why = rules.reason(reason)
        who = rules.actor(actor or default_actor())
        policy = self._trust_policy(policy_id_value)
        already = policy.status == DELETED
        if not already:
            try:
                policy.update(
                    actions=[
                        TrustPolicy.status.set(DELETED),
                        TrustPolicy.status_reason.set(why),
                        TrustPolicy.deleted_at.set(iso(self.now())),
                    ],
                    condition=TrustPolicy.status == ACTIVE,
                )
            except UpdateError as exc:
                if not _conditional_failed(exc):
                    raise
                policy = self._trust_policy(policy_id_value)
                already = True
        revoked = self._revoke_tree(
            policy.root_key_id, policy.tenant_id, why, who, policy.policy_id
        )
        self._audit(
            "trust.deleted",
            tenant_id=policy.tenant_id,
            key_id=policy.root_key_id,
            actor=who,
            reason=why,
            details={
                "policy_id": policy.policy_id,
                "revoked_keys": len(revoked),
                "already_deleted": already,
            },
        )
        log.info("trust policy %s deleted; %d key(s) revoked", policy.policy_id, len(revoked))
        view = policy_view(policy)
        view.update(revoked=revoked, already_deleted=already)
        return view

    def _revoke_tree(
        self, root_key_id: str, tenant_id: str, why: str, who: str, pid: str
    ) -> list[str]:
        """Revoke the root's gate item, then every unexpired child's (in parallel), then
        their ``Key`` records and audit. Returns the ids revoked by this call, root first."""
        now = self.now()
        gate.set_status(self.gate_table, root_key_id, None, REVOKED, only_from=None)
        # Listed after the root is revoked: a child created from now on re-reads its parent
        # (gate.new_key_item) and takes its status, so none escapes.
        children = list(gate.children(self.gate_table, root_key_id, unexpired_at=now))

        def stop(child: str) -> None:
            gate.set_status(self.gate_table, child, root_key_id, REVOKED, only_from=None)

        if children:
            with ThreadPoolExecutor(max_workers=min(CASCADE_WORKERS, len(children))) as pool:
                list(pool.map(stop, children))
        revoked = []
        for kid in [root_key_id, *children]:
            try:  # one write per key: refused if the record is missing or already revoked
                Key(key_id=kid).update(
                    actions=[Key.status.set(REVOKED), Key.status_reason.set(why)],
                    condition=Key.key_id.exists() & (Key.status != REVOKED),
                )
            except UpdateError as exc:
                if _conditional_failed(exc):
                    continue
                raise
            details: dict[str, Any] = {"via": "trust", "policy_id": pid}
            if kid != root_key_id:
                details["cascade_from"] = root_key_id
            self._audit(
                "key.revoked",
                tenant_id=tenant_id,
                key_id=kid,
                actor=who,
                reason=why,
                details=details,
            )
            revoked.append(kid)
        return revoked

    def issue_exchanged_key(
        self,
        policy: TrustPolicy,
        *,
        principal: str,
        tags: Mapping[str, str],
        identity: Mapping[str, str],
    ) -> dict[str, Any]:
        """Issue the delegated key of one verified exchange (functions/trust/exchange.py) and
        audit who it went to. Its networks and fixed tags come from the root key; ``tags``:
        those taken from the token's claims. ``identity``: issuer, subject, audience,
        token_id (a digest of the token's jti), source_ip. Returns the key view, ``secret``
        and ``expires_at_epoch``."""
        issued = self.delegate_key(
            policy.root_key_id,
            principal=principal,
            token_budget=None if policy.token_budget is None else int(policy.token_budget),
            spend_budget_micros=(
                None if policy.spend_budget_micros is None else int(policy.spend_budget_micros)
            ),
            expires_in=int(policy.ttl_seconds),
            actor=root_principal(policy.policy_id),
            tags=dict(tags) or None,  # added to the root's (the policy's fixed tags)
        )
        expires = datetime.strptime(issued["expires_at"], "%Y-%m-%dT%H:%M:%SZ")
        issued["expires_at_epoch"] = int(expires.replace(tzinfo=UTC).timestamp())
        self._audit(
            "trust.exchanged",
            tenant_id=policy.tenant_id,
            key_id=issued["key_id"],
            actor=rules.actor(("oidc:" + identity.get("subject", "?"))[:MAX_ACTOR_LEN]),
            details={
                "policy_id": policy.policy_id,
                "principal": principal,
                "expires_at": issued["expires_at"],
                "tags": dict(issued.get("tags") or {}),
                "allow_cidrs": issued.get("allow_cidrs"),
                **dict(identity),
            },
        )
        return issued
