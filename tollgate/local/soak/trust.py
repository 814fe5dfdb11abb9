"""The soak's OIDC token exchange traffic (issue 15): a local OIDC issuer, two trust
policies on ``soak-open``, and one client that exchanges tokens at ``POST /v1/auth/token``
all through the run, under the same faults, and uses each key it gets:

* policy ``expiring``: keys live ``ttl`` seconds (a quarter of the run, at least 5 s), so
  keys issued early expire mid-run and the client goes on using them after their expiry;
* policy ``doomed``: deleted (``KeyService.delete_trust_policy``) at 55 % of the run (or
  at the end, if the machine was too slow to get there); the client then uses every key it
  issued, on their very next request; at the end it also uses an expired key;
* every other exchange the client replays a token already exchanged.

Each exchanged key is registered as a soak key (``x-expiring-N``, ``x-doomed-N``) whose
``stopped_at`` is its expiry (or the deletion's return), so the soak's own invariants (no
request admitted after a key stopped, counters, usage, secrets in logs) cover them too;
:func:`check` adds the exchange's own rows.
"""

from __future__ import annotations

import json
import os
import random
import time
import urllib.parse
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from tollgate.local.soak.model import ACTOR, DRAW_HEADER, ECHO, KeyInfo, Sent

if TYPE_CHECKING:
    from tollgate.local.soak.checks import Checker
    from tollgate.local.soak.harness import Soak

AUDIENCE: Final = "soak"
TENANT: Final = "soak-open"
GRANT: Final = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN: Final = "urn:ietf:params:oauth:token-type:id_token"  # noqa: S105 - a URN
DELETE_AT: Final = 0.55
PERIOD_S: Final = 0.4
ATTEMPTS: Final = 30  # end-of-run tries; at even 50 % refused by faults, 1 in 10^9 runs


class TrustTraffic:
    def __init__(self, soak: Soak) -> None:
        self.soak = soak
        self.policies: dict[str, dict[str, Any]] = {}
        self.exchanges: list[Sent] = []
        self.replays: list[Sent] = []
        self.deleted_at: float | None = None
        self.revoked: list[str] = []
        self.issued: dict[str, str] = {}  # label -> policy name
        self._n = 0

    def start(self) -> None:
        from functions.trust import handler
        from functions.trust.config import ENV_ALLOW_HTTP
        from tollgate.local.oidc import LocalIssuer

        os.environ[ENV_ALLOW_HTTP] = "1"
        handler.reset()
        self.issuer = LocalIssuer().start()
        self.soak._stoppers.append(self.issuer.stop)

    @property
    def ttl_s(self) -> int:
        return max(5, int(self.soak.config.duration_s / 4))

    def seed(self) -> None:
        from functions.keys import KeyService

        svc = KeyService()
        for name, ttl, subject in (("expiring", self.ttl_s, "ci-*"), ("doomed", 3600, "job-*")):
            self.policies[name] = svc.create_trust_policy(
                TENANT,
                issuer_url=self.issuer.url,
                audience_value=AUDIENCE,
                subject=subject,
                principal="soak:{sub}",
                scopes=["inference:invoke"],
                ttl_value=ttl,
                exchanges_per_minute=1000,
                actor=ACTOR,
            )

    # -- the client --------------------------------------------------------------------------
    def run(self, deadline: float) -> None:
        rng = random.Random(self.soak.config.seed * 7 + 1)
        delete_at = time.monotonic() + DELETE_AT * self.soak.config.duration_s
        held: list[KeyInfo] = []
        used_tokens: list[str] = []
        cfg = self.soak.config
        while not self.soak._stop.is_set() and (
            time.monotonic() < deadline or self.soak._sent_count < cfg.min_requests
        ):
            if self.deleted_at is None and time.monotonic() >= delete_at:
                self._delete_policy(held)
            self._n += 1
            # the first of every three for "doomed" (so even a slow run issues it a key)
            name = "doomed" if self.deleted_at is None and self._n % 3 == 1 else "expiring"
            sub = f"{'job' if name == 'doomed' else 'ci'}-{self._n}"
            token = self.issuer.mint(sub, AUDIENCE)
            sent, body = self._exchange(token)
            self.exchanges.append(sent)
            if sent.status == 200:
                used_tokens.append(token)
                held.append(self._register(name, body))
            if used_tokens and self._n % 2 == 0:
                self._replay(rng.choice(used_tokens))
            for info in held[-8:]:
                self._use(info)
            time.sleep(PERIOD_S)
        self._finish(held, used_tokens)

    def _finish(self, held: list[KeyInfo], used_tokens: list[str]) -> None:
        """However slow the run was and whatever the faults refused, each check has
        something to check: a key issued, the policy deleted and its keys used after, an
        expired key used after its expiry, a replay answered. (CI once failed here: a slow
        run got 1 exchange in 3 past the injected faults, a ``doomed`` one, so no
        ``expiring`` key existed to use after its expiry.)"""
        if self.deleted_at is None:
            self._delete_policy(held)
        expiring = [k for k in held if self.issued[k.label] == "expiring"]
        if not expiring:
            info = self._obtain("expiring", "ci-last", used_tokens)
            if info is not None:
                held.append(info)
                expiring = [info]
        if expiring and not any(k.stopped_at and time.time() > k.stopped_at for k in expiring):
            time.sleep(max(0.0, (expiring[0].stopped_at or 0) - time.time()) + 1.0)
        if expiring:
            self._answered(lambda: self._use(expiring[0]))
        if used_tokens and not any(r.status for r in self.replays):
            self._answered(lambda: self._replay(used_tokens[0]))

    def _obtain(self, name: str, sub: str, used_tokens: list[str]) -> KeyInfo | None:
        """Exchange fresh tokens for a key of policy ``name`` until one is issued: injected
        faults answer an exchange 503 often (it makes several DynamoDB calls), so a bounded
        number of tries with a growing pause, each a new token (a 503 may have used the
        token's jti). ``None`` only if every try failed -- the "exchanged" row then says so."""
        for n in range(ATTEMPTS):
            self._n += 1
            token = self.issuer.mint(f"{sub}-{n}", AUDIENCE)
            sent, body = self._exchange(token)
            self.exchanges.append(sent)
            if sent.status == 200:
                used_tokens.append(token)
                return self._register(name, body)
            time.sleep(min(1.0, 0.1 * (n + 1)))
        return None

    def _answered(self, send: Any) -> None:
        """Send until it gets an HTTP answer (a loaded machine may time a request out; the
        traffic rows count those): each end-of-run check needs one answered request."""
        for n in range(ATTEMPTS):
            before = len(self.soak.sent)
            send()
            if self.soak.sent[before:] and self.soak.sent[-1].status:
                return
            time.sleep(min(1.0, 0.1 * (n + 1)))

    def _replay(self, token: str) -> None:
        replay, _ = self._exchange(token)
        self.replays.append(replay)

    def _delete_policy(self, held: list[KeyInfo]) -> None:
        """Delete ``doomed`` -- with a key of it issued first if none was yet (a slow run,
        faults) -- then use each of its keys: their very next request."""
        if not any(self.issued[k.label] == "doomed" for k in held):
            info = self._obtain("doomed", "job-last", [])
            if info is not None:
                held.append(info)
        self._delete()
        for info in [k for k in held if self.issued[k.label] == "doomed"]:
            self._answered(lambda info=info: self._use(info))

    def _delete(self) -> None:
        from functions.keys import KeyService

        def delete() -> dict[str, Any]:
            return KeyService().delete_trust_policy(
                self.policies["doomed"]["policy_id"], reason="soak: policy revoked", actor=ACTOR
            )

        result = self.soak._retry("trust-delete", delete)
        self.deleted_at = time.time()
        self.revoked = list(result["revoked"])
        with self.soak._lock:
            for info in self.soak.keys.values():
                if info.key_id in self.revoked and self.issued.get(info.label) == "doomed":
                    info.stopped_at = min(info.stopped_at or self.deleted_at, self.deleted_at)
        self.soak.events.append(
            f"{self.deleted_at - self.soak.started:6.1f}s trust policy deleted: "
            f"{len(self.revoked)} key(s) revoked"
        )

    def _register(self, name: str, body: dict[str, Any]) -> KeyInfo:
        from functions.keys import KeyService

        shown = self.soak._retry("trust-key", lambda: KeyService().get_key(body["key_id"]))
        expires = datetime.strptime(shown["expires_at"], "%Y-%m-%dT%H:%M:%SZ")
        label = f"x-{name}-{self._n}"
        info = KeyInfo(
            label,
            body["access_token"],
            key_id=body["key_id"],
            tenant_id=TENANT,
            environment="live",
            scopes=frozenset(shown["scopes"]),
            principal=shown["principal"],
            stopped_at=expires.replace(tzinfo=UTC).timestamp(),  # refused from then on
        )
        with self.soak._lock:
            self.soak.keys[label] = info
            self.issued[label] = name
        return info

    def _exchange(self, token: str) -> tuple[Sent, dict[str, Any]]:
        form = urllib.parse.urlencode(
            {"grant_type": GRANT, "subject_token": token, "subject_token_type": ID_TOKEN}
        ).encode()
        draw = {DRAW_HEADER: f"trust.{self._n}.{len(self.replays)}",
                "Content-Type": "application/x-www-form-urlencoded"}  # fmt: skip
        t0 = time.time()
        try:
            status, rid, data, _ = self.soak._http("POST", "/v1/auth/token", None, form, draw)
        except Exception as exc:  # no HTTP answer (timeout, connection): recorded, as _client
            sent = Sent("http", "-", "token-exchange", 0, t0=t0, t1=time.time(),
                        error=f"{type(exc).__name__}: {exc}"[:300])  # fmt: skip
            with self.soak._lock:
                self.soak.sent.append(sent)
            return sent, {}
        try:
            body = json.loads(data)
        except ValueError:
            body = {}
        code = "" if status == 200 else str(body.get("error", ""))
        sent = Sent("http", "-", "token-exchange", status, code=code, request_id=rid, t0=t0,
                    t1=time.time())  # fmt: skip
        with self.soak._lock:
            self.soak.sent.append(sent)
        return sent, body

    def _use(self, info: KeyInfo) -> None:
        doc = {"model": ECHO, "messages": [{"role": "user", "content": "exchanged key"}]}
        draw = {DRAW_HEADER: f"trust.use.{info.label}.{time.monotonic_ns()}"}
        t0 = time.time()
        try:
            status, rid, data, code = self.soak._http(
                "POST", "/v1/chat/completions", info, json.dumps(doc).encode(), draw
            )
        except Exception as exc:  # no HTTP answer: recorded (the traffic rows count it)
            sent = Sent("http", info.label, "chat", 0, t0=t0, t1=time.time(),
                        error=f"{type(exc).__name__}: {exc}"[:300])  # fmt: skip
            with self.soak._lock:
                self.soak.sent.append(sent)
            return
        tokens = 0
        if status == 200:
            tokens = int(json.loads(data).get("usage", {}).get("total_tokens", 0))
        sent = Sent("http", info.label, "chat", status, code=code, request_id=rid, t0=t0,
                    t1=time.time(), tokens=tokens)  # fmt: skip
        with self.soak._lock:
            self.soak.sent.append(sent)


# -- the checks ------------------------------------------------------------------------------
def check(checker: Checker) -> None:
    """The exchange's own rows (group ``8 trust``)."""
    traffic: TrustTraffic | None = getattr(checker.soak, "trust", None)
    if traffic is None:
        return
    group = "8 trust"
    outcomes = Counter(f"{s.status} {s.code}".strip() for s in traffic.exchanges)
    issued = outcomes.get("200", 0)
    checker.check(group, "tokens exchanged for keys", issued, "> 0", issued > 0,
                  ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items())))  # fmt: skip
    refused_ok = {"400", "429", "503"}
    # unanswered ones (status 0, a client timeout) are the traffic rows' to count
    bad = [
        s for s in traffic.exchanges if s.status not in (0, 200) and str(s.status) not in refused_ok
    ]
    checker.zero(group, "exchanges answered other than 200, 400, 429 or 503", bad)
    replayed = [s for s in traffic.replays if s.status == 200]
    checker.check(group, "replayed tokens exchanged again", len(replayed), "0",
                  not replayed and any(r.status for r in traffic.replays),
                  f"of {len(traffic.replays)} replays (max uses 1)")  # fmt: skip
    keys = checker.soak.keys

    def tally(sent: list[Sent]) -> str:
        return ", ".join(
            f"{k}: {v}" for k, v in Counter(f"{c.status} {c.code}" for c in sent).items()
        )

    expired = [
        c
        for c in checker.answered
        if traffic.issued.get(c.key) == "expiring"
        and c.action == "chat"
        and c.t0 >= (keys[c.key].stopped_at or float("inf"))
    ]
    admitted = [c for c in expired if c.status < 400]
    checker.check(
        group,
        "requests with exchanged keys after their expiry answered 2xx",
        len(admitted),
        "0",
        not admitted and bool(expired),
        f"{len(expired)} such requests (TTL {traffic.ttl_s} s): {tally(expired)}",
    )
    deleted_at = traffic.deleted_at
    after = [
        c
        for c in checker.answered
        if traffic.issued.get(c.key) == "doomed" and deleted_at is not None and c.t0 >= deleted_at
    ]
    late = [c for c in after if c.status < 400]
    checker.check(
        group,
        "requests with a deleted policy's keys after the deletion answered 2xx",
        len(late),
        "0",
        not late and bool(after),
        f"{len(traffic.revoked)} keys revoked; {len(after)} requests with them afterwards: "
        f"{tally(after)}",
    )
    exchanged_ids = {k.key_id for k in keys.values() if k.label in traffic.issued}
    principals = {e.get("principal") for e in checker.events if e.get("key_id") in exchanged_ids}
    wrong = {p for p in principals if not str(p).startswith("soak:")}
    checker.zero(
        group,
        "usage events of exchanged keys not attributed to the subject",
        wrong,
        f"{len(principals)} principals",
    )
