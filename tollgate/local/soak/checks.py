"""The invariants of docs/design.md, checked after a soak from three independent records:

* what each client saw (:class:`~.model.Sent`: status, error code, ``x-amzn-RequestId``,
  tokens reported);
* what the gateway served (:class:`~.model.Served`: the authorizer's decision, the time it
  was asked, and the minute window and position its conditional update counted the
  request at, from the item DynamoDB returned);
* what DynamoDB holds at the end (tenant counters, usage events, rollups, audit records),
  plus the faults injected (with the request each hit) and the functions' log lines.

Each check gives one :class:`~.model.Row`; ``ok`` False on any row fails the soak.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sized
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tollgate.local.soak.model import ECHO, HOST, KEYS, ROUTE_OF, KeyInfo, Row, route_family

if TYPE_CHECKING:
    from tollgate.local.soak.harness import Soak

INVALID_LABELS = frozenset({"bad-checksum", "unknown", "garbage", "missing"})


def scan(table: str) -> Iterator[dict[str, Any]]:
    """Every item of ``table`` as plain values (consistent reads)."""
    from functions.common import ddb

    client = ddb.client()
    # Small pages: one 1 MB page of the keys table took more than the client's 5 s read
    # timeout on a busy 2-core machine (moto serialises every request).
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True, "Limit": 250}
    while True:
        page = client.scan(**kwargs)
        for item in page.get("Items", []):
            yield ddb.item_from_ddb(item)
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def route_allows(info: KeyInfo, action: str) -> bool:
    """Whether ``info``'s key may call the route ``action`` uses (environment and scope)."""
    from functions.common.routes import route_for

    family = route_family(action)
    if family not in ROUTE_OF:
        return True
    route = route_for(*ROUTE_OF[family])
    assert route is not None
    return info.environment in route.environments and (
        route.scope is None or route.scope in info.scopes
    )


def _epoch(iso: str) -> float:
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def _tokens(item: dict[str, Any]) -> int:
    return int(item.get("prompt_tokens") or 0) + int(item.get("completion_tokens") or 0)


def gate_views(
    tables: Any, tenants: Iterable[dict[str, Any]], key_ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """Each tenant with its gate (``functions/gate/items.py``) read back in one view: ``mo``,
    ``mreq``, ``mtok`` summed over the counter shards of both environments (the soak's ledger
    and usage events hold both), ``mreq_live`` / ``mtok_live`` for the live limits alone, and
    ``gate``: key id -> key item, for the soak's own keys (``key_ids``; the keys seeded in
    bulk are not read: the gate table may hold thousands)."""
    from functions.common.models import Key
    from functions.gate import admin
    from functions.gate import items as it

    views = {str(t["tenant_id"]): dict(t) for t in tenants}
    for tenant_id, view in views.items():
        found = [
            {**s, "_env": env}
            for env in it.ENVIRONMENTS
            for s in admin.read_shards(tables.gate, tenant_id, env, it.MAX_SHARDS)
        ]
        month = max((str(s.get("mo") or "") for s in found), default="")
        current = [s for s in found if s.get("mo") == month]
        view["mo"] = month or None
        view["mreq"] = sum(int(s.get("rq") or 0) for s in current)
        view["mtok"] = sum(int(s.get("tk") or 0) for s in current)
        view["mreq_live"] = sum(int(s.get("rq") or 0) for s in current if s["_env"] == "live")
        view["mtok_live"] = sum(int(s.get("tk") or 0) for s in current if s["_env"] == "live")
        view["gate"] = {}
    for key_id in key_ids:
        key = Key.get(key_id, consistent_read=True)
        item = admin.get_key_item(tables.gate, key_id, key.parent_key_id)
        if item is not None and key.tenant_id in views:
            views[key.tenant_id]["gate"][key_id] = item
    return views


class Checker:
    def __init__(self, soak: Soak) -> None:
        from functions.common.config import TableNames

        self.soak = soak
        self.rows: list[Row] = []
        self.tables = TableNames()
        # With ambiguous faults a write may be applied and still answered 500 (and retried),
        # so counters may legitimately count more than happened: equalities become bounds.
        self.ambiguous = soak.config.faults.ambiguous > 0
        self.sent = soak.sent
        self.served = soak.served
        self.answered = [s for s in self.sent if s.status]
        self.by_rid = {s.request_id: s for s in self.served}
        self.sent_by_rid = {s.request_id: s for s in self.sent if s.request_id}
        self.keys_by_id = {k.key_id: k for k in soak.keys.values() if k.key_id}
        self.admitted = [s for s in self.served if s.auth == "allow"]
        self.refusals = Counter(f"{s.status} {s.code}" for s in self.served if s.status >= 400)
        self.faults = soak.faults.snapshot()
        self.faults_by_trace: dict[str, list[Any]] = defaultdict(list)
        for f in self.faults:
            self.faults_by_trace[f.trace].append(f)
        # Answers lost to a client timeout (a busy machine): like ambiguous faults, each may
        # have been applied and then retried. Per tenant, the gate updates that were lost
        # bound how far its counters may count above what was admitted.
        self.lost_gate: Counter[str] = Counter()
        for f in self.faults:
            served = self.by_rid.get(f.trace)
            if f.kind == "lost" and f.table == self.tables.gate and served is not None:
                self.lost_gate[served.tenant_id] += 1
        self.tenants = gate_views(self.tables, scan(self.tables.tenants), list(self.keys_by_id))
        self.events = list(scan(self.tables.usage))
        self.audit = list(scan(self.tables.audit))
        self.lost_events = {
            str((r.get("event") or {}).get("request_id")): dict(r.get("event") or {})
            for r in soak.capture.named("usage event not written")
        }
        self.not_written = set(self.lost_events)

    # -- rows ------------------------------------------------------------------------------
    def info(self, group: str, name: str, value: Any, note: str = "", target: str = "") -> None:
        self.rows.append(Row(group, name, value, target, None, note))

    def check(
        self, group: str, name: str, value: Any, target: str, ok: bool, note: str = ""
    ) -> None:
        self.rows.append(Row(group, name, value, target, ok, note))

    def zero(self, group: str, name: str, found: Sized | int, note: str = "") -> None:
        n = found if isinstance(found, int) else len(found)
        self.check(group, name, n, "0", n == 0, note)

    def run(self) -> list[Row]:
        self.traffic()
        self.gate()
        self.counters()
        self.revocation()
        self.usage()
        self.test_keys()
        self.secrets()
        self.errors()
        self.injected()
        from tollgate.local.soak.trust import check as trust_rows

        trust_rows(self)  # issue 15: exchanged keys expiring, a policy deleted mid-run
        return self.rows

    # -- traffic -------------------------------------------------------------------------
    def traffic(self) -> None:
        soak, sent = self.soak, self.sent
        elapsed = max(soak.ended - soak.started, 1e-9)
        sdk = sum(s.client == "sdk" for s in sent)
        self.info("traffic", "seed", soak.config.seed, f"replay: {soak.config.replay()}")
        self.info(
            "traffic", "keys issued to soak-open before the run (half revoked)",
            soak.config.extra_keys,
            "the gate's cost and limits must not depend on them; soak-quota's monthly quota is "
            "spread over 4 counter shards",
        )  # fmt: skip
        self.info(
            "traffic",
            "requests sent",
            len(sent),
            f"{len(sent) / elapsed:.0f}/s over {elapsed:.0f} s by {soak.config.clients} "
            f"clients: {sdk} OpenAI SDK, {len(sent) - sdk} plain HTTP",
        )
        no_answer = [s for s in sent if not s.status]
        self.zero(
            "traffic",
            "requests without an HTTP answer",
            no_answer,
            "; ".join(sorted({s.error for s in no_answer}))[:200],
        )
        differ = [
            s
            for s in self.answered
            if s.request_id not in self.by_rid or self.by_rid[s.request_id].status != s.status
        ]
        self.zero("traffic", "client and gateway records that disagree", differ)
        self.info("traffic", "admitted (authorizer allowed, no limit verdict)", len(self.admitted))
        self.info("traffic", "answered 2xx", sum(1 for s in self.served if s.status < 400))
        for reason, n in sorted(self.refusals.items(), key=lambda kv: (kv[0][:3], -kv[1])):
            self.info("refused", reason, n)

    # -- invariant 1 ------------------------------------------------------------------------
    def gate(self) -> None:
        wrongly: list[str] = []
        for s in self.admitted:
            client = self.sent_by_rid.get(s.request_id)
            info = self.keys_by_id.get(s.key_id)
            label = client.key if client else "?"
            if info is None or (client is not None and client.key != info.label):
                wrongly.append(f"key {s.key_id} admitted for a request sent with {label}")
            elif not info.valid or (info.stopped_at is not None and s.auth_t0 > info.stopped_at):
                wrongly.append(f"{info.label} admitted")
            elif client is not None and not route_allows(info, client.action):
                wrongly.append(f"{info.label} admitted on {client.action}")
        self.zero(
            "1 gate",
            "admitted without a valid key, environment or scope",
            wrongly,
            "; ".join(wrongly[:3]),
        )
        invalid = [s for s in self.answered if s.key in INVALID_LABELS]
        # An unknown (well-formed) key needs a read: while DynamoDB fails it gets 503.
        other = [
            s for s in invalid if s.status != 401 and not (s.status == 503 and s.key == "unknown")
        ]
        self.zero(
            "1 gate",
            "malformed, unknown or missing keys answered other than 401",
            other,
            f"of {len(invalid)} such requests (an unknown key may get 503 while DynamoDB "
            "fails: fail closed)",
        )
        stale = [s for s in self.answered if s.key in ("pre-revoked", "expired") and s.status < 400]
        self.zero("1 gate", "keys revoked before the run or expired answered 2xx", stale)

    # -- invariant 2 ------------------------------------------------------------------------
    def counters(self) -> None:
        self._per_minute()
        self._per_month()
        self._tokens()

    def _per_minute(self) -> None:
        per_minute: Counter[tuple[str, int]] = Counter()
        positions: dict[tuple[str, int], list[int]] = defaultdict(list)
        for s in self.admitted:
            if s.minute is not None and s.count is not None:
                per_minute[(s.key_id, s.minute)] += 1
                positions[(s.key_id, s.minute)].append(s.count)
        no_window = sum(1 for s in self.admitted if s.minute is None)
        overshoot, busiest = 0, 0
        rpm_keys = {self.soak.keys[k].key_id for k in ("rpm-live", "rpm-test")}
        for (key_id, _), n in per_minute.items():
            info = self.keys_by_id.get(key_id)
            limit = self.tenants.get(info.tenant_id if info else "", {}).get("lim_rpm")
            if limit is not None:
                overshoot += max(0, n - int(limit))
            if key_id in rpm_keys:
                busiest = max(busiest, n)
        limit = self.tenants.get("soak-rpm", {}).get("lim_rpm")
        refused = self.refusals.get("429 rate_limit_exceeded", 0)
        self.info(
            "2 counters",
            "per-minute: most admitted in one key-minute (soak-rpm)",
            busiest,
            f"limit {limit}; {refused} refused 429 rate_limit_exceeded"
            + ("" if refused else " (limit not reached in this run)"),
        )
        self.check(
            "2 counters",
            "per-minute overshoot (every key, every minute)",
            overshoot,
            "0",
            overshoot == 0 and no_window == 0,
            f"{len(per_minute)} key-minutes; window read from the item the gate's "
            f"conditional update returned ({no_window} admissions without one)",
        )
        # A count the gate gave back (the shard refused after the key item counted) lets a
        # later request take the same position, so positions may repeat. What must hold: the
        # counter never holds fewer than the admissions so far, so the i-th smallest position
        # of a key-minute is at least i (a lost update breaks it).
        uncounted = sum(
            1 for seen in positions.values() for i, p in enumerate(sorted(seen), 1) if p < i
        )
        self.zero(
            "2 counters", "admissions in a key-minute the gate's counter did not hold",
            uncounted,
        )  # fmt: skip

    def _per_month(self) -> None:
        admitted = Counter((s.tenant_id, s.month) for s in self.admitted)
        notes, overshoot, off = [], 0, []
        live = Counter((s.tenant_id, s.month) for s in self.admitted if s.environment == "live")
        for tenant_id, t in sorted(self.tenants.items()):
            counter = int(t.get("mreq") or 0)
            ledger = admitted.get((tenant_id, str(t.get("mo", ""))), 0)
            limit = t.get("lim_rmo")
            if limit is not None:  # the limit counts live keys only (test keys have their own)
                live_ledger = live.get((tenant_id, str(t.get("mo", ""))), 0)
                live_counter = int(t.get("mreq_live") or 0)
                overshoot += max(0, live_counter - int(limit)) + max(0, live_ledger - int(limit))
                notes.append(f"{tenant_id}: {ledger} admitted, limit {limit}")
            # Exact, but for writes that may have been applied twice: ambiguous faults (any
            # excess) and lost answers (at most one per lost update of this tenant's item).
            excess = counter - ledger
            allowed = excess if self.ambiguous else self.lost_gate[tenant_id]
            if excess < 0 or excess > allowed:
                # which requests the gate counted without their answer being an admission
                counted_not_admitted = [
                    f"{s.request_id} ({s.auth} {s.status} {s.code})".strip()
                    for s in self.served
                    if s.counted and s.auth != "allow" and s.tenant_id == tenant_id
                ]  # fmt: skip
                detail = "; counted, not admitted: " + ", ".join(counted_not_admitted[:3])
                off.append(f"{tenant_id}: counter {counter}, admitted {ledger}"
                           + (detail if counted_not_admitted else ""))  # fmt: skip
        refused = self.refusals.get("429 quota_exceeded", 0)
        self.info(
            "2 counters",
            "per-month requests (soak-quota)",
            "; ".join(notes),
            f"{refused} refused 429 quota_exceeded"
            + ("" if refused else " (limit not reached in this run)"),
        )
        self.zero(
            "2 counters", "per-month overshoot (counter or admitted above the limit)", overshoot
        )
        name = (
            "month counters below admitted requests"
            if self.ambiguous
            else ("month counters != admitted requests")
        )
        self.zero("2 counters", name, off, "; ".join(off[:3]))

    def _tokens(self) -> None:
        """Token budgets: never above their limit, and the counter exactly accounted for.

        counter = tokens of the usage events + tokens of requests whose event was lost to
        faults (the client's answer says how many) + what failed settles left (each logged
        with its delta: a reservation kept where a limit reserved, the actual tokens
        missing where nothing was reserved)."""
        stuck_t: Counter[str] = Counter()
        stuck_k: Counter[str] = Counter()
        settles = self.soak.capture.named("settle failed; the reservation stays counted")
        for r in settles:  # each line says which counter's settle failed ("part")
            if r.get("part", "tenant") == "tenant":
                stuck_t[str(r.get("tenant_id"))] -= int(r.get("delta") or 0)
            if r.get("part", "key") == "key":
                stuck_k[str(r.get("key_id"))] -= int(r.get("delta") or 0)
        lost_t: Counter[str] = Counter()
        lost_k: Counter[str] = Counter()
        for rid in self.not_written:
            served, client = self.by_rid.get(rid), self.sent_by_rid.get(rid)
            if served is not None and client is not None:
                # A client that cut its stream never saw the usage: the dead letter has it.
                tokens = _tokens(self.lost_events[rid]) if client.cut else client.tokens
                lost_t[served.tenant_id] += tokens
                lost_k[served.key_id] += tokens
        used_t: Counter[str] = Counter()
        used_k: Counter[str] = Counter()
        for e in self.events:
            used_t[e["tenant_id"]] += _tokens(e)
            used_k[e["key_id"]] += _tokens(e)
        shown, off, overshoot = [], [], 0
        tenant_of = {k.label: k.tenant_id for k in self.soak.keys.values()}

        def account(name: str, counter: int, used: int, expected: int, limit: Any) -> None:
            nonlocal overshoot
            if limit is not None:
                overshoot += max(0, counter - int(limit)) + max(0, used - int(limit))
                shown.append(f"{name}: counter {counter}, events {used}, limit {limit}")
            # Below its events is a breach only where the counter enforces a limit: with none,
            # nothing is reserved and a failed settle leaves the actual tokens uncounted.
            under = limit is not None and counter < used
            exact = not self.ambiguous and not self.lost_gate[tenant_of.get(name, name)]
            if under or (counter != expected and exact):
                off.append(f"{name}: counter {counter}, events {used}, accounted {expected}")

        for tenant_id, t in sorted(self.tenants.items()):
            account(
                tenant_id,
                int(t.get("mtok") or 0),
                used_t[tenant_id],
                used_t[tenant_id] + lost_t[tenant_id] + stuck_t[tenant_id],
                t.get("lim_tmo"),
            )
            for key_id, entry in (t.get("gate") or {}).items():
                if "b" in entry:
                    info = self.keys_by_id.get(key_id)
                    account(
                        info.label if info else key_id,
                        int(entry.get("u") or 0),
                        used_k[key_id],
                        used_k[key_id] + lost_k[key_id] + stuck_k[key_id],
                        entry["b"],
                    )
        refused = self.refusals.get("429 insufficient_quota", 0)
        self.info(
            "2 counters",
            "token budgets (soak-tokens, the delegated agent)",
            "; ".join(shown),
            f"{refused} refused 429 insufficient_quota",
        )
        self.zero("2 counters", "token budget overshoot (counters and events)", overshoot)
        name = (
            "token counters below their events (under-counted)"
            if self.ambiguous
            else "token counters != events + lost events + failed settles"
        )
        self.zero(
            "2 counters",
            name,
            off,
            "; ".join(off[:3])
            or f"{len(self.not_written)} events lost and {len(settles)} settles failed on "
            f"injected faults, all accounted for: {sum(v for v in stuck_t.values() if v > 0)} "
            "tokens held by reservations that were never settled (limited budgets: "
            "over-counted, the safe way), "
            f"{-sum(v for v in stuck_t.values() if v < 0)} actual tokens never added "
            "(unlimited tenants: nothing was reserved)"
            + (
                " -- with ambiguous faults a failed settle may have been applied"
                if self.ambiguous
                else ""
            ),
        )

    # -- invariant 3 ------------------------------------------------------------------------
    def revocation(self) -> None:
        keys = self.soak.keys
        # the mid-run stops (exchanged keys stop too, on expiry: group "8 trust")
        stopped = sorted(k.label for k in keys.values() if k.stopped_at is not None
                         and k.label in KEYS)  # fmt: skip
        late = [
            f"{info.label} {s.auth_t0 - (info.stopped_at or 0):.3f}s after"
            for s in self.admitted
            if (info := self.keys_by_id.get(s.key_id)) is not None
            and info.stopped_at is not None
            and s.auth_t0 > info.stopped_at
        ]
        refused = sum(
            1
            for c in self.answered
            if c.status == 403 and c.key in keys and c.t0 > (keys[c.key].stopped_at or float("inf"))
        )
        self.check(
            "3 revocation",
            "requests admitted after the revoke/suspend call returned",
            len(late),
            "0",
            not late and len(stopped) == 4,
            f"stopped mid-run: {', '.join(stopped)}; {refused} requests with them "
            "refused 403 afterwards. " + "; ".join(late[:3]),
        )
        stops: dict[str, float] = {}
        for a in self.audit:
            if a.get("action") in ("key.revoked", "key.suspended") and a.get("key_id"):
                stops[a["key_id"]] = min(stops.get(a["key_id"], float("inf")), _epoch(a["at"]))
        after = [s for s in self.admitted if s.key_id in stops and s.auth_t0 > stops[s.key_id]]
        by_detector = [
            a
            for a in self.audit
            if a.get("action") == "key.suspended" and a.get("actor") != "detector:soak"
        ]
        self.zero(
            "3 revocation",
            "requests admitted after the key's revoke/suspend audit record",
            after,
            f"{len(stops)} keys stopped (before the run, mid-run, cascaded); "
            f"{len(by_detector)} suspended by the spike detector (plans: spike_policy off; "
            f"it saw every usage event and {self._refusals()} refusals from the access log)",
        )

    def _refusals(self) -> str:
        feed = getattr(self.soak, "refusals", None)
        if feed is None:
            return "no"
        return f"{feed.delivered}" + (f" ({feed.dropped} dropped)" if feed.dropped else "")

    # -- invariant 4 ------------------------------------------------------------------------
    def usage(self) -> None:
        from functions.usage.reports import reconcile

        admitted_ids = {s.request_id for s in self.admitted}
        event_ids = {e["request_id"] for e in self.events}
        missing = admitted_ids - event_ids
        excused = {r for r in missing if r in self.not_written and self.faults_by_trace.get(r)}
        errors = sum(1 for e in self.events if e.get("status") == "error")
        self.info(
            "4 usage",
            "usage events",
            len(self.events),
            f"{errors} of them error events (admitted requests that failed, e.g. 400/404)",
        )
        self.zero("4 usage", "usage events without an admitted request", event_ids - admitted_ids)
        self.info(
            "4 usage",
            "admitted requests whose event write failed on injected faults",
            len(excused),
            "each attempt of its PutItem drew a fault; the whole event is in "
            "the log as 'usage event not written' (the dead letter)",
        )
        unexplained = sorted(missing - excused)
        self.zero(
            "4 usage",
            "admitted requests without a usage event, unexplained",
            unexplained,
            "; ".join(unexplained[:3]),
        )
        wrong = []
        for e in self.events:
            s = self.by_rid.get(e["request_id"])
            if s is None:
                continue
            want = {
                "tenant_id": s.tenant_id,
                "key_id": s.key_id,
                "environment": s.environment,
                "principal": s.principal,
                "operation": s.operation,
                "source_ip": HOST,
            }
            bad = [k for k, v in want.items() if str(e.get(k)) != v]
            if bad:
                wrong.append(f"{e['request_id']}: {','.join(bad)}")
        self.zero(
            "4 usage",
            "events attributed wrongly (tenant/key/principal/env/op/source)",
            wrong,
            "; ".join(wrong[:3]),
        )
        drift = malformed = compared = 0
        months = sorted({str(t["mo"]) for t in self.tenants.values() if t.get("mo")})
        for tenant_id in sorted(self.tenants):
            for month in months:
                result = reconcile(tenant_id, month)
                drift += result.drift
                malformed += result.malformed_events
                compared += result.items
        soak = self.soak
        self.check(
            "4 usage",
            "rollups vs events: drift (reconcile: every tenant, hour/day/month)",
            drift,
            "0",
            drift == 0 and malformed == 0 and soak.drained,
            f"{compared} rollup items compared, {malformed} malformed events; pollers "
            f"drained in {soak.drain_s:.1f} s" + ("" if soak.drained else " (NOT DRAINED)"),
        )
        stats = soak.pollers.stats
        self.zero(
            "4 usage",
            "stream records dead-lettered",
            len(soak.pollers.dead_letters),
            f"consumers {', '.join(soak.sources)}; invocations {stats['invocations']}",
        )

    # -- invariant 5 ------------------------------------------------------------------------
    def test_keys(self) -> None:
        reached = [
            e
            for e in self.events
            if e.get("environment") == "test"
            and e.get("status") == "ok"
            and e.get("operation") == "chat.completions"
            and e.get("model") != ECHO
        ]
        answered = [
            s
            for s in self.answered
            if s.action == "chat-paid-model"
            and s.status < 400
            and self.soak.keys[s.key].environment == "test"
        ]
        refused = sum(1 for s in self.answered if s.code == "model_not_allowed_for_test_key")
        self.zero(
            "5 test keys",
            "test-key requests that reached a model other than tollgate-echo",
            len(reached) + len(answered),
            f"{refused} refused 403 "
            "model_not_allowed_for_test_key; billable rollups leave test keys out "
            "(reconciled above)",
        )

    # -- invariant 6 ------------------------------------------------------------------------
    def secrets(self) -> None:
        secrets = [k.secret for k in self.soak.keys.values() if k.secret and k.secret[:3] == "tg_"]
        where = {
            "logs": self.soak.capture.text(),
            "usage events": json.dumps(self.events, default=str),
            "audit records": json.dumps(self.audit, default=str),
            "key records": json.dumps(list(scan(self.tables.keys)), default=str),
        }
        found = sorted({w for w, text in where.items() for s in secrets if s in text})
        size = sum(len(t) for t in where.values()) // 1024
        self.zero(
            "6 secrets",
            "secrets found in logs, events, audit or key records",
            found,
            f"{len(secrets)} secrets searched for in {size} KiB. " + ", ".join(found),
        )

    # -- invariant 7 ------------------------------------------------------------------------
    def errors(self) -> None:
        five = [s for s in self.served if s.status >= 500]
        self.info(
            "7 errors",
            "5xx answers",
            len(five),
            ", ".join(
                f"{k}: {v}" for k, v in Counter(f"{s.status} {s.code}" for s in five).items()
            ),
        )
        uninjected = [s for s in five if not self.faults_by_trace.get(s.request_id)]
        self.zero(
            "7 errors",
            "5xx that were not injected faults",
            uninjected,
            "; ".join(self.describe(s) for s in uninjected[:3]),
        )
        bugs = [
            s for s in self.served if s.status == 500 or s.code in ("internal_error", "bad_gateway")
        ]
        self.zero(
            "7 errors",
            "500 internal_error or 502 bad_gateway (faults or not)",
            bugs,
            "; ".join(self.describe(s) for s in bugs[:3]),
        )
        shapeless = [s for s in self.served if s.status >= 400 and not s.openai_body]
        traced = [s for s in self.served if s.traceback]
        self.zero(
            "7 errors",
            "error answers without the OpenAI error body, or with a traceback",
            len(shapeless) + len(traced),
        )
        self.zero(
            "7 errors",
            "'unexpected error' log lines (exceptions no handler maps)",
            self.soak.capture.named("unexpected error"),
        )

    def describe(self, served: Any) -> str:
        """One answer that should not have happened: route, answer, the faults its request
        met and what the function raised."""
        faults = ",".join(
            f"{f.kind} {f.operation} {f.table}"
            for f in self.faults_by_trace.get(served.request_id, [])
        )
        return (
            f"{served.method} {served.path} -> {served.status} {served.code} "
            f"(auth {served.auth}; faults [{faults}]; raised {served.failure or '-'})"
        )

    # -- what was injected ----------------------------------------------------------------
    def injected(self) -> None:
        kinds = Counter(f.kind for f in self.faults)
        seen = sum(self.soak.faults.seen.values())
        failed = kinds["throttle"] + kinds["error"] + kinds["ambiguous"]
        outages = sum("outage" in e for e in self.soak.events)
        self.info(
            "faults",
            "DynamoDB requests seen / failed on purpose",
            f"{seen} / {failed}",
            f"throttled {kinds['throttle']}, 500 {kinds['error']}, applied-then-500 "
            f"{kinds['ambiguous']} (outages: {outages}); answers lost to a client timeout "
            f"(not injected; bounds, not equalities, for their tenants): {kinds['lost']}",
        )
        self.info(
            "faults",
            "stream handler invocations crashed",
            kinds["crash"] + kinds["crash_after"],
            f"before their work {kinds['crash']}, after it {kinds['crash_after']}",
        )
        five = sum(
            1 for s in self.served if s.status >= 500 and self.faults_by_trace.get(s.request_id)
        )
        touched = sum(1 for s in self.served if self.faults_by_trace.get(s.request_id))
        self.info(
            "faults",
            "requests that met an injected fault",
            touched,
            f"{five} answered 5xx, the others recovered through botocore's retries",
        )
        if self.ambiguous:
            # Every request id of the soak is new, so a "duplicate" can only be the API's own
            # put, applied, answered 500 and retried by botocore.
            dup = self.soak.capture.named(
                "duplicate delivery of a request id: usage already recorded"
            )
            self.zero(
                "2 counters",
                "usage puts applied, answered 500, retried and read as a redelivery",
                dup,
                "such a request would release its whole reservation although its event "
                "records the tokens (tests/integration/test_faults_api.py)",
            )
