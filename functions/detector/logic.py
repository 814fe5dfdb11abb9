"""Spike detection without I/O: the same code runs on the usage stream and over a trace.

Everything here is driven by *event time* (a usage event's ``ts``), never by the clock, so a
recorded trace gives the same answers as the live stream (``tollgate detect backtest``).
docs/detection.md explains the signals and the numbers; in short, per key
(:class:`KeyState`, one ``DetectorState`` item per key when live):

* **token spike**: tokens in the current UTC event minute above
  ``max(floor_tpm, factor x baseline, EWMA + z x sigma)`` with at least ``min_requests``
  requests. The baseline is the larger of an EWMA of tokens per minute (idle minutes count
  as 0) and the key's hour-of-day profile (learnt at once, forgotten by ``day_alpha`` a day:
  a nightly job is known the next night); sigma is the EWMA's weighted deviation;
* **request spike**: requests in the minute above ``max(request_floor_rpm, factor x
  baseline)``;
* **fan-out** (a key shared or resold): *new* sources (IPv4 addresses, IPv6 /64s not used by
  the key in ``known_minutes``) in the last 60 minutes above ``max(fanout_floor,
  fanout_factor x baseline)``;
* **stuffing source**: the key is used from a source flagged for credential stuffing. It
  suspends only on evidence tied to the key: the flag is strong *for this key* (enough
  distinct refused keys that are unknown, or dead keys of the key's own tenant) and the key
  was first used from that source after the stuffing began. A key that used the address
  before (a NAT, a proxy, a CI runner), or whose tenant the evidence is not about, gets an
  alert, never a suspension: its only fault is its address.

A minute over a volume threshold counts when the minute before was over too (sustained) or
when it is over ``surge`` x the threshold; it enters the baselines clipped, so a spike cannot
raise its own bar. Per source (:class:`SourceState`): ``stuffing_distinct`` distinct refused
keys (by fingerprint) within ``stuffing_window_min`` minutes flag the source (strong
evidence), or ``stuffing_anonymous`` refusals without fingerprints (weak: alerts only). Only
refusals that say "someone is trying keys" count (:data:`STUFFING_CODES`: unknown, malformed,
revoked or expired keys); a tenant's own scope, environment or route mistakes never do. A
refused key that names its tenant (a 403 carries the key's tenant) is evidence about that
tenant only; a refused key without one (unknown to us) is evidence about anyone.

Warm-up: a key with no history starts from its plan (baseline and profile at ``floor_tpm``,
requests at ``request_floor_rpm``, new sources at ``fanout_floor / fanout_factor``); during
its first ``learn_minutes`` only a surge may suspend (a sustained spike alerts) and fan-out
is not evaluated. Nothing below a floor is ever a spike.

Incidents: a finding opens an incident on the key; while it is open (a hot observation
within ``cooldown_min`` event minutes) no further finding is raised, so one incident gives
one suspension; an alert-only incident escalates once. :meth:`Engine.hold` (a human
reinstated the key) suppresses suspensions until a given minute and re-bases the key.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

MINUTE_MS: Final = 60_000
GAP_CAP: Final = 720  # idle minutes folded one by one; after that the baseline is ~0 anyway
MODES: Final = ("suspend", "alert", "off")

# Signals.
TOKEN_SPIKE: Final = "token_spike"  # noqa: S105 - a signal name
REQUEST_SPIKE: Final = "request_spike"
FANOUT: Final = "fanout"
STUFFING_SOURCE: Final = "stuffing_source"  # a key used from a flagged source
STUFFING: Final = "stuffing"  # a source flagged (no key involved)

# Refusal codes that indicate someone trying keys: the authorizer's 401s (no, malformed or
# unknown key; API Gateway logs no code for them, records.py names them invalid_api_key),
# and 403s for dead keys. "" is a refusal of unknown cause (an old trace). Scope, environment,
# route, suspension and tenant denials are a tenant's own mistakes: not stuffing.
STUFFING_CODES: Final = frozenset(
    {"", "invalid_api_key", "missing_api_key", "key_revoked", "key_expired", "UNAUTHORIZED"}
)
MAX_FLAG_TENANTS: Final = 8  # tenants whose dead keys a flag remembers (the largest counts)


@dataclass(frozen=True)
class Policy:
    """A plan's spike settings: ``mode`` suspend | alert | off, ``factor``, ``floor_tpm``."""

    mode: str = "suspend"
    factor: float = 10.0
    floor_tpm: int = 1000

    @classmethod
    def of(cls, mode: Any = None, factor: Any = None, floor_tpm: Any = None) -> Policy:
        """A policy from stored plan values (absent ones take the plan defaults)."""
        base = cls()
        chosen = str(mode) if mode is not None else base.mode
        if chosen not in MODES:
            chosen = base.mode  # an unknown mode is treated as the safe default
        f = float(factor) if factor is not None else base.factor
        fl = int(floor_tpm) if floor_tpm is not None else base.floor_tpm
        return cls(chosen, f if f > 1 else base.factor, max(0, fl))


DEFAULT_POLICY: Final = Policy()


@dataclass(frozen=True)
class Params:
    """The detector's tuning, common to every plan (docs/detection.md explains each)."""

    alpha: float = 1 / 30
    sigma_z: float = 8.0
    min_requests: int = 5
    request_floor_rpm: int = 30
    fanout_window_min: int = 60
    fanout_floor: int = 10
    fanout_factor: float = 4.0
    fanout_alpha: float = 1 / 6
    day_alpha: float = 0.15
    size_alpha: float = 0.05
    stuffing_window_min: int = 5
    stuffing_distinct: int = 20
    stuffing_anonymous: int = 60
    stuffing_flag_min: int = 60
    cooldown_min: int = 60
    surge: float = 5.0
    learn_minutes: int = 1440
    max_sources: int = 512
    known_minutes: int = 7 * 1440
    max_refused: int = 256


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Usage:
    """What the detector needs of a usage event."""

    ts: int  # epoch milliseconds (event time)
    key_id: str
    tenant_id: str = ""
    tokens: int = 0
    source: str = "-"
    plan: str | None = None
    principal: str = ""
    environment: str = ""
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused request: no key was admitted (unknown, malformed, revoked ...)."""

    ts: int
    source: str
    code: str = ""
    fp: str | None = None  # a short fingerprint of the refused key, when one is known
    tenant: str = ""  # the refused key's tenant, when the refusal names one (403)

    @property
    def stuffing(self) -> bool:
        """Whether this refusal can be evidence of stuffing (see :data:`STUFFING_CODES`)."""
        return self.code in STUFFING_CODES


def normalise_source(value: Any) -> str:
    """An IPv4 address as is, an IPv6 address as its /64 (privacy addresses rotate within a
    /64), anything else as given (bounded)."""
    text = str(value or "-").strip()[:64] or "-"
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return text
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


# --------------------------------------------------------------------------- state


def _ints(data: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """``data`` with the values of ``names`` as ints (DynamoDB gives numbers back as Decimal)."""
    return {k: (int(v) if k in names else v) for k, v in data.items()}


def _r(value: float) -> float | int:
    """A float fit for DynamoDB (which refuses tiny exponents) and compact."""
    if abs(value) < 1e-6:
        return 0
    rounded = round(value, 4)
    return int(rounded) if float(rounded).is_integer() else rounded


@dataclass
class KeyState:
    """Everything the detector remembers about one key."""

    minute: int = -1  # the open event minute (epoch minutes); -1: never seen
    tok: float = 0.0  # tokens in the open minute
    req: int = 0  # requests in the open minute
    sq: float = 0.0  # sum of squared tokens per request in the open minute
    m2: float = 0.0  # mean squared tokens per request (EWMA over normal minutes)
    bt: float = 0.0  # baseline tokens per minute (EWMA)
    vt: float = 0.0  # its exponentially weighted variance
    br: float = 0.0  # baseline requests per minute (EWMA)
    minutes: int = 0  # minutes folded into the baselines
    hour: int = -1  # the open event hour
    bi: float = 0.0  # baseline new sources per hour (EWMA)
    ht: float = 0.0  # tokens in the open hour
    hr: int = 0  # requests in the open hour
    pt: list[float] = field(default_factory=list)  # tokens/min by UTC hour, previous days
    pr: list[float] = field(default_factory=list)  # requests/min by UTC hour, previous days
    nt: list[float] = field(default_factory=list)  # tokens/min by UTC hour, today so far
    nr: list[float] = field(default_factory=list)  # requests/min by UTC hour, today so far
    known: dict[str, int] = field(default_factory=dict)  # source -> last minute seen
    # source -> first minute seen (same sources as ``known``; a known source without one was
    # first seen before this field existed: long ago)
    since: dict[str, int] = field(default_factory=dict)
    fresh: dict[str, int] = field(default_factory=dict)  # new source -> first minute seen
    incident: dict[str, Any] | None = None
    hold_until: int = -1  # no suspension up to this minute (a human reinstated the key)
    first: int = -1  # the minute the detector first saw the key (learning period)
    hot: int = -1  # the last minute a volume signal was over its threshold
    hot_before: int = -1  # the hot minute before that one
    # Per stream shard: [sequence number of the last record applied, minute applied]; the
    # stream handler skips records at or below it (replays). Not used by the engine.
    marks: dict[str, list[Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "m": self.minute,
            "t": _r(self.tok),
            "r": self.req,
            "sq": _r(self.sq),
            "m2": _r(self.m2),
            "bt": _r(self.bt),
            "vt": _r(self.vt),
            "br": _r(self.br),
            "n": self.minutes,
            "h": self.hour,
            "bi": _r(self.bi),
            "ht": _r(self.ht),
            "hr": self.hr,
            "pt": [_r(v) for v in self.pt],
            "pr": [_r(v) for v in self.pr],
            "nt": [_r(v) for v in self.nt],
            "nr": [_r(v) for v in self.nr],
            "ips": dict(self.known),
            "ips0": dict(self.since),
            "new": dict(self.fresh),
            "hold": self.hold_until,
            "f": self.first,
            "hm": self.hot,
            "hp": self.hot_before,
            "mk": {k: list(v) for k, v in self.marks.items()},
        }
        if self.incident is not None:
            out["inc"] = dict(self.incident)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> KeyState:
        if not data:
            return cls()
        inc = data.get("inc")
        return cls(
            minute=int(data.get("m", -1)),
            tok=float(data.get("t", 0)),
            req=int(data.get("r", 0)),
            sq=float(data.get("sq", 0)),
            m2=float(data.get("m2", 0)),
            bt=float(data.get("bt", 0)),
            vt=float(data.get("vt", 0)),
            br=float(data.get("br", 0)),
            minutes=int(data.get("n", 0)),
            hour=int(data.get("h", -1)),
            bi=float(data.get("bi", 0)),
            ht=float(data.get("ht", 0)),
            hr=int(data.get("hr", 0)),
            pt=[float(v) for v in data.get("pt") or []],
            pr=[float(v) for v in data.get("pr") or []],
            nt=[float(v) for v in data.get("nt") or []],
            nr=[float(v) for v in data.get("nr") or []],
            known={str(k): int(v) for k, v in (data.get("ips") or {}).items()},
            since={str(k): int(v) for k, v in (data.get("ips0") or {}).items()},
            fresh={str(k): int(v) for k, v in (data.get("new") or {}).items()},
            incident=_ints(inc, ("onset", "last")) if inc else None,
            hold_until=int(data.get("hold", -1)),
            first=int(data.get("f", -1)),
            hot=int(data.get("hm", -1)),
            hot_before=int(data.get("hp", -1)),
            marks={str(k): [str(v[0]), int(v[1])] for k, v in (data.get("mk") or {}).items()},
        )


@dataclass
class SourceState:
    """What the detector remembers about one source address (refusals only)."""

    refused: dict[str, int] = field(default_factory=dict)  # key fingerprint -> last minute
    owners: dict[str, str] = field(default_factory=dict)  # key fingerprint -> its tenant
    anonymous: dict[int, int] = field(default_factory=dict)  # minute -> refusals without one
    flag: dict[str, Any] | None = None

    def flagged_at(self, minute: int) -> dict[str, Any] | None:
        """The flag in force at ``minute``, if any."""
        flag = self.flag
        if flag is not None and int(flag["onset"]) <= minute <= int(flag["until"]):
            return flag
        return None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "k": dict(self.refused),
            "o": dict(self.owners),
            "a": {str(m): c for m, c in self.anonymous.items()},
        }
        if self.flag is not None:
            out["flag"] = dict(self.flag)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SourceState:
        if not data:
            return cls()
        flag = data.get("flag")
        return cls(
            refused={str(k): int(v) for k, v in (data.get("k") or {}).items()},
            owners={str(k): str(v) for k, v in (data.get("o") or {}).items()},
            anonymous={int(m): int(c) for m, c in (data.get("a") or {}).items()},
            flag=_flag(flag) if flag else None,
        )


def _flag(data: dict[str, Any]) -> dict[str, Any]:
    """A stored flag with its numbers as ints (tenant counts included)."""
    out = _ints(data, ("onset", "until", "distinct", "refusals", "unknown"))
    if isinstance(out.get("tenants"), dict):
        out["tenants"] = {str(t): int(n) for t, n in out["tenants"].items()}
    return out


def evidence_for(flag: dict[str, Any], tenant: str) -> int:
    """How many of a flag's distinct refused keys are evidence about a key of ``tenant``: the
    unknown ones (anyone's key may be found by guessing) and the dead keys of that tenant.
    A flag from before attribution existed counts all its keys as unknown."""
    unknown = int(flag.get("unknown", flag.get("distinct", 0)))
    tenants = flag.get("tenants") or {}
    return unknown + (int(tenants.get(tenant, 0)) if tenant else 0)


# --------------------------------------------------------------------------- findings


def iso_ms(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Finding:
    """A detection: which key (or source), which signal, what to do, and the evidence."""

    subject: str  # the key id; for a ``stuffing`` finding, the source
    kind: str  # "key" | "source"
    signal: str
    action: str  # "suspend" | "alert"
    incident_id: str
    ts: int  # event time of the event that tripped it (ms)
    window_start: int  # ms
    observed: float
    baseline: float
    threshold: float
    unit: str
    tenant_id: str = ""
    principal: str = ""
    environment: str = ""
    source: str = ""
    policy: Policy = DEFAULT_POLICY

    def evidence(self) -> dict[str, Any]:
        """JSON-ready, secret-free evidence (audit record, event detail, backtest row)."""
        return {
            "incident_id": self.incident_id,
            "signal": self.signal,
            "window": {"start": iso_ms(self.window_start), "end": iso_ms(self.ts)},
            "observed": _r(self.observed),
            "baseline": _r(self.baseline),
            "threshold": _r(self.threshold),
            "unit": self.unit,
            "source": self.source or None,
            "policy": {
                "mode": self.policy.mode,
                "factor": _r(self.policy.factor),
                "floor_tpm": self.policy.floor_tpm,
            },
        }


@dataclass(frozen=True)
class _Signal:
    name: str
    observed: float
    baseline: float
    threshold: float
    unit: str
    window_start: int
    strong: bool = True  # False: evidence only good enough for an alert
    source: str = ""


# --------------------------------------------------------------------------- engine


class Engine:
    """Feeds events through per-key and per-source state and returns findings. No I/O."""

    def __init__(self, params: Params | None = None) -> None:
        self.p = params or Params()

    # -- thresholds ------------------------------------------------------------------
    @staticmethod
    def _seasonal(profile: list[float], hour: int) -> float:
        """The busiest of this hour of day and its neighbours on previous days (a daily
        job drifts a bit)."""
        if len(profile) != 24:
            return 0.0
        h = hour % 24
        return max(profile[(h - 1) % 24], profile[h], profile[(h + 1) % 24])

    def token_baseline(self, s: KeyState) -> float:
        return max(s.bt, self._seasonal(s.pt, s.hour))

    def request_baseline(self, s: KeyState) -> float:
        return max(s.br, self._seasonal(s.pr, s.hour))

    def token_threshold(self, s: KeyState, policy: Policy) -> float:
        """``max(floor, factor x baseline, baseline + z x noise)``. The noise is the larger
        of the EWMA's own deviation and a compound-Poisson estimate, sqrt(requests/min x
        E[tokens^2 per request]): a key making a few big requests a minute is lumpy even
        when its history is short."""
        base = self.token_baseline(s)
        poisson = math.sqrt(max(self.request_baseline(s) * s.m2, 0.0))
        noise = max(math.sqrt(max(s.vt, 0.0)), poisson)
        return max(float(policy.floor_tpm), policy.factor * base, base + self.p.sigma_z * noise)

    def request_threshold(self, s: KeyState, policy: Policy) -> float:
        return max(float(self.p.request_floor_rpm), policy.factor * self.request_baseline(s))

    def fanout_threshold(self, s: KeyState) -> float:
        return max(float(self.p.fanout_floor), self.p.fanout_factor * s.bi)

    # -- usage -----------------------------------------------------------------------
    def usage(
        self,
        s: KeyState,
        ev: Usage,
        policy: Policy = DEFAULT_POLICY,
        source: SourceState | None = None,
    ) -> Finding | None:
        """Account ``ev`` to its key's state; a finding if it trips a signal."""
        if policy.mode == "off":
            return None
        minute = ev.ts // MINUTE_MS
        if s.minute < 0:
            self._start(s, policy, minute)
        if minute < s.minute:  # late (another shard, a replay): baselines only, never a trigger
            a = self.p.alpha
            s.bt += a * ev.tokens
            s.br += a
            if ev.source not in s.known:
                s.known[ev.source] = s.since[ev.source] = minute
            return None
        self._roll(s, minute, policy)
        s.tok += ev.tokens
        s.req += 1
        s.sq += float(ev.tokens) ** 2
        s.ht += ev.tokens
        s.hr += 1
        # When the key was first seen at this source (-1: before first-seen was recorded).
        first_here = s.since.get(ev.source, -1) if ev.source in s.known else minute
        self._see(s, ev.source, minute)
        signal = (
            self._volume(s, ev, policy)
            or self._fanout(s, ev)
            or self._stuffing_source(ev, minute, source, first_here)
        )
        if signal is None:
            return None
        return self._incident(s, ev, policy, signal, minute)

    def _start(self, s: KeyState, policy: Policy, minute: int) -> None:
        """The warm-up prior (see the module docstring)."""
        s.minute = s.first = minute
        s.hour = minute // 60
        s.bt = float(policy.floor_tpm)
        s.vt = 0.0
        s.br = float(self.p.request_floor_rpm)
        # The profiles learn from the key's own days (learning covers the first).
        s.pt, s.pr, s.nt, s.nr = [0.0] * 24, [0.0] * 24, [0.0] * 24, [0.0] * 24
        s.bi = self.p.fanout_floor / self.p.fanout_factor

    def _roll(self, s: KeyState, minute: int, policy: Policy = DEFAULT_POLICY) -> None:
        """Close the open minute (and the idle ones after it) into the baselines.

        A minute over its threshold enters the baselines as at most twice the baseline (or
        the floor): an anomalous minute must barely lift the bar the next one is measured
        against, else a sustained spike would hide behind its own first minutes.
        """
        if minute <= s.minute:
            return
        a = self.p.alpha
        tokens, requests = s.tok, float(s.req)
        if tokens > self.token_threshold(s, policy):
            tokens = max(2 * self.token_baseline(s), float(policy.floor_tpm))
        elif s.req:  # a normal minute teaches the request size (a hot one does not)
            mean_square = s.sq / s.req
            s.m2 = mean_square if s.m2 <= 0 else s.m2 + self.p.size_alpha * (mean_square - s.m2)
        if requests > self.request_threshold(s, policy):
            requests = max(2 * self.request_baseline(s), float(self.p.request_floor_rpm))
        s.bt, s.vt = _ew(s.bt, s.vt, tokens, a)
        s.br += a * (requests - s.br)

        idle = minute - s.minute - 1
        for _ in range(min(idle, GAP_CAP)):
            s.bt, s.vt = _ew(s.bt, s.vt, 0.0, a)
            s.br *= 1 - a
        if idle > GAP_CAP:
            s.bt = s.vt = s.br = 0.0
        s.minutes += idle + 1
        s.minute, s.tok, s.req, s.sq = minute, 0.0, 0, 0.0
        hour = minute // 60
        if hour > s.hour:
            self._roll_hour(s, hour)
        oldest = minute - self.p.fanout_window_min + 1
        if s.fresh and min(s.fresh.values()) < oldest:
            s.fresh = {k: m for k, m in s.fresh.items() if m >= oldest}

    def _roll_hour(self, s: KeyState, hour: int) -> None:
        """Close the open hour into the daily profiles and the sources baseline."""
        if s.hour >= 0:
            fa, da = self.p.fanout_alpha, self.p.day_alpha
            closed_from = hour * 60 - self.p.fanout_window_min
            seen = sum(1 for m in s.fresh.values() if m >= closed_from)
            s.bi += fa * (seen - s.bi)
            s.bi *= (1 - fa) ** min(hour - s.hour - 1, 1000)
            for name in ("pt", "pr", "nt", "nr"):
                if len(getattr(s, name)) != 24:
                    setattr(s, name, [0.0] * 24)
            # Today's hours go to nt/nr; at the end of each UTC day they join the profiles
            # (learn at once, forget slowly: a daily job is known the next day, and a level
            # not seen again fades by (1 - day_alpha) a day). Lookups read previous days only.
            for i, h in enumerate(range(s.hour, min(hour, s.hour + 48))):
                tokens, requests = (s.ht, s.hr) if i == 0 else (0.0, 0)
                s.nt[h % 24], s.nr[h % 24] = tokens / 60, requests / 60
                if h % 24 == 23:
                    self._end_day(s)
            skipped_days = (hour // 24) - ((s.hour + 48) // 24)
            if hour - s.hour > 48 and skipped_days > 0:  # long idle: whole days without use
                decay = (1 - da) ** min(skipped_days, 1000)
                s.pt = [v * decay for v in s.pt]
                s.pr = [v * decay for v in s.pr]
        s.hour, s.ht, s.hr = hour, 0.0, 0

    def _end_day(self, s: KeyState) -> None:
        da = self.p.day_alpha
        s.pt = [max(n, p * (1 - da)) for n, p in zip(s.nt, s.pt, strict=True)]
        s.pr = [max(n, p * (1 - da)) for n, p in zip(s.nr, s.pr, strict=True)]
        s.nt, s.nr = [0.0] * 24, [0.0] * 24

    def _see(self, s: KeyState, source: str, minute: int) -> None:
        """Remember ``source``; a source the key has not used in ``known_minutes`` is new."""
        if source not in s.known:
            s.fresh[source] = minute
            s.since[source] = minute
            if len(s.fresh) > int(self.fanout_threshold(s)) + 2:  # enough to decide
                del s.fresh[min(s.fresh, key=lambda k: s.fresh[k])]
        s.known[source] = minute
        if len(s.known) > self.p.max_sources:
            forget = minute - self.p.known_minutes
            s.known = {k: m for k, m in s.known.items() if m > forget}
            while len(s.known) > self.p.max_sources:
                del s.known[min(s.known, key=lambda k: s.known[k])]
            s.since = {k: m for k, m in s.since.items() if k in s.known}

    def _volume(self, s: KeyState, ev: Usage, policy: Policy) -> _Signal | None:
        """A token or request spike in the open minute, if it counts.

        Over its threshold, a minute counts if the minute before it was over too (the spike
        is sustained) or if it is over ``surge`` x the larger of the threshold and factor x
        the floor (no need to wait: 50x the floor with default settings). While the key is
        learning (its first ``learn_minutes``), only a surge may suspend; a sustained spike
        is an alert.
        """
        minute = ev.ts // MINUTE_MS
        tokens = self.token_threshold(s, policy)
        requests = self.request_threshold(s, policy)
        if s.tok > tokens and s.req >= self.p.min_requests:
            name, observed, base, threshold, unit = (
                TOKEN_SPIKE, s.tok, self.token_baseline(s), tokens, "tokens/min",
            )  # fmt: skip
            # One minute is enough only far above both the threshold and factor x floor.
            overwhelming = self.p.surge * max(tokens, policy.factor * policy.floor_tpm)
        elif s.req > requests:
            name, observed, base, threshold, unit = (
                REQUEST_SPIKE, float(s.req), self.request_baseline(s), requests, "requests/min",
            )  # fmt: skip
            overwhelming = self.p.surge * max(requests, policy.factor * self.p.request_floor_rpm)
        else:
            return None
        if s.hot != minute:
            s.hot_before, s.hot = s.hot, minute
        surge = observed > overwhelming
        if not surge and s.hot_before != minute - 1:
            return None  # one hot minute is noise until the next one is hot too
        learning = minute - s.first < self.p.learn_minutes
        start = (s.hot_before if not surge else minute) * MINUTE_MS
        return _Signal(name, observed, base, threshold, unit, start, strong=surge or not learning)

    def _fanout(self, s: KeyState, ev: Usage) -> _Signal | None:
        threshold = self.fanout_threshold(s)
        if ev.ts // MINUTE_MS - s.first < self.p.learn_minutes:
            return None  # while learning, every source is new: nothing to compare with
        seen = len(s.fresh)
        if seen <= threshold:
            return None
        start = ev.ts - self.p.fanout_window_min * MINUTE_MS
        return _Signal(FANOUT, seen, s.bi, threshold, "new sources/hour", start)

    def _stuffing_source(
        self, ev: Usage, minute: int, source: SourceState | None, first_here: int
    ) -> _Signal | None:
        """The key is used from a flagged source. Strong (may suspend) only on evidence tied
        to the key: enough distinct refused keys that concern it (unknown keys, or dead keys
        of its own tenant: :func:`evidence_for`) and the key new at the source (first used
        there after the stuffing's evidence window opened). Anything else is an alert: a
        key whose only fault is sharing an address with a stuffer is never suspended."""
        flag = source.flagged_at(minute) if source is not None else None
        if flag is None:
            return None
        if not flag.get("strong"):
            return _Signal(
                STUFFING_SOURCE, int(flag["refusals"]), 0.0, float(self.p.stuffing_anonymous),
                "refusals/5 min", int(flag["onset"]) * MINUTE_MS, strong=False, source=ev.source,
            )  # fmt: skip
        concerning = evidence_for(flag, ev.tenant_id)
        began = int(flag["onset"]) - self.p.stuffing_window_min + 1
        new_here = first_here >= began
        return _Signal(
            STUFFING_SOURCE,
            int(flag["distinct"]),
            0.0,
            float(self.p.stuffing_distinct),
            "refused keys/5 min",
            int(flag["onset"]) * MINUTE_MS,
            strong=new_here and concerning >= self.p.stuffing_distinct,
            source=ev.source,
        )

    def _incident(
        self, s: KeyState, ev: Usage, policy: Policy, sig: _Signal, minute: int
    ) -> Finding | None:
        action = policy.mode if sig.strong else "alert"
        inc = s.incident
        if inc is not None and minute - int(inc["last"]) <= self.p.cooldown_min:
            inc["last"] = minute
            if not (inc.get("action") == "alert" and action == "suspend"):
                return None
            inc["action"] = action  # escalate an alert-only incident, once
        else:
            s.incident = inc = {
                "id": f"{ev.key_id}@{iso_ms(minute * MINUTE_MS)}",
                "onset": minute,
                "last": minute,
                "signal": sig.name,
                "action": action,
            }
        if minute <= s.hold_until:
            return None  # a human reinstated the key for this window
        return Finding(
            subject=ev.key_id,
            kind="key",
            signal=sig.name,
            action=action,
            incident_id=str(inc["id"]),
            ts=ev.ts,
            window_start=sig.window_start,
            observed=sig.observed,
            baseline=sig.baseline,
            threshold=sig.threshold,
            unit=sig.unit,
            tenant_id=ev.tenant_id,
            principal=ev.principal,
            environment=ev.environment,
            source=sig.source,
            policy=policy,
        )

    def hold(self, s: KeyState, until_minute: int) -> None:
        """A human reinstated the key: no suspension up to ``until_minute``, and the level
        the human accepted becomes the baseline."""
        s.hold_until = max(s.hold_until, until_minute)
        s.bt = max(s.bt, s.tok)
        s.br = max(s.br, float(s.req))
        if len(s.pt) == 24 and len(s.pr) == 24:
            s.pt[s.hour % 24] = max(s.pt[s.hour % 24], s.tok)
            s.pr[s.hour % 24] = max(s.pr[s.hour % 24], float(s.req))
        s.bi = max(s.bi, float(len(s.fresh)))

    # -- refusals --------------------------------------------------------------------
    def refusal(self, src: SourceState, ev: Refusal) -> Finding | None:
        """Account a refused request to its source; a finding when the source is flagged."""
        p = self.p
        minute = ev.ts // MINUTE_MS
        oldest = minute - p.stuffing_window_min + 1
        src.refused = {k: m for k, m in src.refused.items() if m >= oldest}
        src.anonymous = {m: c for m, c in src.anonymous.items() if m >= oldest}
        if minute < oldest:  # pragma: no cover - cannot happen (oldest <= minute)
            return None
        if src.owners:
            src.owners = {k: t for k, t in src.owners.items() if k in src.refused}
        if not ev.stuffing:
            return None  # a tenant's own mistake (scope, environment, route ...): not stuffing
        if ev.fp:
            src.refused[ev.fp] = max(minute, src.refused.get(ev.fp, minute))
            if ev.tenant:
                src.owners[ev.fp] = ev.tenant[:64]
            if len(src.refused) > p.max_refused:
                oldest_fp = min(src.refused, key=lambda k: src.refused[k])
                del src.refused[oldest_fp]
                src.owners.pop(oldest_fp, None)
        else:
            src.anonymous[minute] = src.anonymous.get(minute, 0) + 1
        distinct = len(src.refused)
        refusals = distinct + sum(src.anonymous.values())
        tenants: dict[str, int] = {}
        for owner in src.owners.values():
            tenants[owner] = tenants.get(owner, 0) + 1
        unknown = distinct - len(src.owners)
        largest = sorted(tenants.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_FLAG_TENANTS]
        strong = distinct >= p.stuffing_distinct
        if not strong and refusals < p.stuffing_anonymous:
            return None
        flag = src.flagged_at(minute)
        if flag is not None:
            flag["until"] = minute + p.stuffing_flag_min
            flag["distinct"] = max(int(flag["distinct"]), distinct)
            flag["refusals"] = max(int(flag["refusals"]), refusals)
            flag["unknown"] = max(int(flag.get("unknown", 0)), unknown)
            merged = dict(flag.get("tenants") or {})
            for tenant, n in largest:
                merged[tenant] = max(int(merged.get(tenant, 0)), n)
            flag["tenants"] = dict(
                sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_FLAG_TENANTS]
            )
            if flag.get("strong") or not strong:
                return None
            flag["strong"] = True  # weak evidence became strong: say so, once
        else:
            src.flag = flag = {
                "id": f"{ev.source}@{iso_ms(minute * MINUTE_MS)}",
                "onset": minute,
                "until": minute + p.stuffing_flag_min,
                "strong": strong,
                "distinct": distinct,
                "refusals": refusals,
                "unknown": unknown,
                "tenants": dict(largest),
            }
        return Finding(
            subject=ev.source,
            kind="source",
            signal=STUFFING,
            action="alert",
            incident_id=str(flag["id"]),
            ts=ev.ts,
            window_start=oldest * MINUTE_MS,
            observed=distinct if strong else refusals,
            baseline=0.0,
            threshold=float(p.stuffing_distinct if strong else p.stuffing_anonymous),
            unit="refused keys/5 min" if strong else "refusals/5 min",
            source=ev.source,
        )


def _ew(mean: float, var: float, x: float, a: float) -> tuple[float, float]:
    """One step of an exponentially weighted mean and variance (West, 1979)."""
    d = x - mean
    mean += a * d
    var = (1 - a) * (var + a * d * d)
    return mean, var
