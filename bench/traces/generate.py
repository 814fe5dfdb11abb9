"""Deterministic generator of the detector's traces (``bench/traces/*.jsonl.gz``).

``python -m bench.traces.generate [--out bench/traces] [--seed 7] [--days 7] [--keys 50]``
writes:

* ``normal.jsonl.gz``: ``days`` of diurnal traffic for ``keys`` live keys (10 tenants);
* ``abuse.jsonl.gz``: the same traffic with three injected abuses;
* ``abuse.truth.json``: the ground truth of the injections (onset times, keys, source).

The same arguments always give byte-identical files (one seeded ``random.Random``, no clock,
gzip without a timestamp).

The traffic
-----------
Every line is one JSON object. A usage event carries the fields of a ``UsageEvent`` the
detector reads (``ts`` in epoch ms, ``key_id``, ``tenant_id``, ``prompt_tokens``,
``completion_tokens``, ``source_ip``, ``plan``); a refused request is
``{"kind": "refusal", "ts", "source_ip", "code", "key_fp"}`` (``key_fp``: 8 hex characters
fingerprinting the refused key, absent when unknown).

Keys are of three kinds:

* 35 **server** keys: one to three fixed source addresses;
* 10 **agent** keys: like server keys, plus a nightly batch job on weekdays (20-40 minutes
  at 3-6 times the key's daytime peak, starting within 15 minutes of the same local time);
* 5 **distributed** keys: requests from a pool of 40 addresses (serverless egress, a fleet
  of workers), Zipf-weighted.

A key's request rate per minute is ``peak x diurnal(local hour) x weekday x noise``: peak is
log-uniform (0.05-4 requests/min, a few heavy keys), ``diurnal`` a business-hours bump over
an 8 % night floor in the key's own time zone, weekends at 30 %, and an hourly log-normal
noise (sigma 0.35). Requests per minute are Poisson; tokens per request log-normal (a
per-key median of 120-1500, sigma 0.8), split 70/30 into prompt and completion. Benign
refusals are sprinkled in: a client retrying one stale key now and then, and anonymous
internet background noise (no fingerprint).

The injected abuse (``abuse.truth.json`` gives the onsets)
----------------------------------------------------------
* **burst** (a leaked key): on day 3 at 14:23:17 a light key is used from four new addresses
  at about 120 requests/min of ~1,500 tokens, for 30 minutes;
* **fanout** (slow resale): on day 4 from 09:00 a moderate key gains a new "customer"
  address every 4 minutes, each making ~0.5 requests/min for 90 minutes, for 8 hours;
* **stuffing**: on day 5 at 03:12:40 one address tries 400 distinct unknown keys over
  5 minutes; two of the 50 keys were on its list and it uses them from that address at
  20 requests/min from 2 and 3.5 minutes after the onset, for 20 minutes.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

START: Final = int(datetime(2026, 3, 2, tzinfo=UTC).timestamp() * 1000)  # a Monday
MINUTE: Final = 60_000
DAY_MIN: Final = 1440
PLAN: Final = "standard"
ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
HERE: Final = Path(__file__).resolve().parent


@dataclass
class KeyProfile:
    key_id: str
    tenant_id: str
    kind: str  # server | agent | distributed
    tz: float  # hours from UTC
    peak_rpm: float
    token_median: float
    ips: list[str]
    weights: list[float]
    job_minute: int = -1  # local minute of day the nightly job starts (agents)
    job_minutes: int = 0
    job_factor: float = 0.0
    noise: dict[int, float] = field(default_factory=dict)  # hour index -> multiplier


def _key_id(rng: random.Random) -> str:
    return "key_" + "".join(rng.choice(ALPHABET) for _ in range(16))


def _ip(rng: random.Random, first: int) -> str:
    return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:  # normal approximation, never needed by the default profiles
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def profiles(rng: random.Random, n_keys: int) -> list[KeyProfile]:
    out = []
    zones = (-8, -5, -3, 0, 1, 2, 5.5, 8, 9, 10)
    for i in range(n_keys):
        kind = "distributed" if i % 10 == 9 else ("agent" if i % 5 == 3 else "server")
        if kind == "distributed":
            ips = [_ip(rng, rng.choice((3, 18, 34, 52, 54))) for _ in range(40)]
            weights = [1 / (j + 1) for j in range(40)]
        else:
            firsts = (23, 44, 63, 81, 104, 151)
            ips = [_ip(rng, rng.choice(firsts)) for _ in range(rng.randint(1, 3))]
            weights = [1.0] * len(ips)
        p = KeyProfile(
            key_id=_key_id(rng),
            tenant_id=f"t{i // 5 + 1:02d}",
            kind=kind,
            tz=rng.choice(zones),
            peak_rpm=math.exp(rng.uniform(math.log(0.05), math.log(4.0))),
            token_median=math.exp(rng.uniform(math.log(120), math.log(1500))),
            ips=ips,
            weights=weights,
        )
        if kind == "agent":
            p.job_minute = rng.randrange(60, 300)  # 01:00-05:00 local
            p.job_minutes = rng.randint(20, 40)
            p.job_factor = rng.uniform(3, 6)
        out.append(p)
    return out


def _diurnal(local_hour: float) -> float:
    if 7 <= local_hour <= 19:
        return 0.08 + 0.92 * math.sin(math.pi * (local_hour - 7) / 12) ** 1.5
    return 0.08


def _rate(p: KeyProfile, minute: int, rng: random.Random) -> float:
    """Requests per minute of key ``p`` at trace minute ``minute``."""
    local = minute + int(p.tz * 60)
    day, minute_of_day = divmod(local, DAY_MIN)
    weekday = (day % 7) < 5  # the trace starts on a Monday
    hour_index = local // 60
    noise = p.noise.get(hour_index)
    if noise is None:
        noise = p.noise[hour_index] = math.exp(rng.gauss(0, 0.35))
    rate = p.peak_rpm * _diurnal(minute_of_day / 60) * (1.0 if weekday else 0.3) * noise
    if p.job_minute >= 0 and weekday:
        # the job's start drifts by up to 15 minutes from night to night
        drift = (day * 7919 + p.job_minute) % 31 - 15
        start = p.job_minute + drift
        if start <= minute_of_day < start + p.job_minutes:
            rate += p.peak_rpm * p.job_factor
    return rate


def _usage(p: KeyProfile, ts: int, ip: str, tokens: float) -> dict[str, Any]:
    total = max(1, round(tokens))
    prompt = max(1, round(total * 0.7))
    return {
        "ts": ts,
        "key_id": p.key_id,
        "tenant_id": p.tenant_id,
        "prompt_tokens": prompt,
        "completion_tokens": max(1, total - prompt),
        "source_ip": ip,
        "plan": PLAN,
    }


def _tokens(rng: random.Random, median: float) -> float:
    return median * math.exp(rng.gauss(0, 0.8))


def normal_events(
    rng: random.Random, keys: list[KeyProfile], days: int
) -> Iterator[dict[str, Any]]:
    """The normal traffic, minute by minute (not sorted within a minute)."""
    stale_client = _ip(rng, 98)
    stale_fp = f"{rng.getrandbits(32):08x}"
    for minute in range(days * DAY_MIN):
        base = START + minute * MINUTE
        for p in keys:
            for _ in range(_poisson(rng, _rate(p, minute, rng))):
                ip = rng.choices(p.ips, p.weights)[0]
                yield _usage(p, base + rng.randrange(MINUTE), ip, _tokens(rng, p.token_median))
        # benign refusals: a stale key retried a few times about every 3 hours ...
        if minute % 180 == 97:
            for j in range(rng.randint(2, 6)):
                yield {
                    "kind": "refusal",
                    "ts": base + j * 7_000,
                    "source_ip": stale_client,
                    "code": "invalid_api_key",
                    "key_fp": stale_fp,
                }
        # ... and internet background noise, without fingerprints
        if rng.random() < 0.02:
            yield {
                "kind": "refusal",
                "ts": base + rng.randrange(MINUTE),
                "source_ip": _ip(rng, rng.choice((45, 89, 185, 193))),
                "code": "missing_api_key",
            }


def _at(day: int, hour: int, minute: int, second: int = 0) -> int:
    return START + ((day - 1) * DAY_MIN + hour * 60 + minute) * MINUTE + second * 1000


def abuse_events(
    rng: random.Random, keys: list[KeyProfile], days: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Injected abuse events and their ground truth."""
    light = sorted((p for p in keys if p.kind == "server"), key=lambda p: p.peak_rpm)
    leaked = light[len(light) // 4]
    moderate = sorted(keys, key=lambda p: p.peak_rpm)[len(keys) // 2]
    found = [p for p in keys if p.kind == "server" and p not in (leaked, moderate)][3:5]
    events: list[dict[str, Any]] = []
    truth: list[dict[str, Any]] = []

    # 1. leaked-key burst
    onset = _at(min(3, days), 14, 23, 17)
    attackers = [_ip(rng, 185) for _ in range(4)]
    for second in range(30 * 60):
        for _ in range(_poisson(rng, 2.0)):  # ~120 requests/min
            ts = onset + second * 1000 + rng.randrange(1000)
            events.append(_usage(leaked, ts, rng.choice(attackers), _tokens(rng, 1500)))
    truth.append({"type": "burst", "key_id": leaked.key_id, "onset_ts": onset})

    # 2. slow resale fan-out
    onset = _at(min(4, days), 9, 0)
    for n in range(8 * 60 // 4):
        joined = onset + n * 4 * MINUTE
        customer = _ip(rng, rng.choice((36, 39, 42, 49, 58, 61, 110, 112, 175, 177)))
        for m in range(90):
            for _ in range(_poisson(rng, 0.5)):
                ts = joined + m * MINUTE + rng.randrange(MINUTE)
                events.append(_usage(moderate, ts, customer, _tokens(rng, 400)))
    truth.append({"type": "fanout", "key_id": moderate.key_id, "onset_ts": onset})

    # 3. credential stuffing from one source
    onset = _at(min(5, days), 3, 12, 40)
    stuffer = _ip(rng, 194)
    for n in range(400):
        events.append(
            {
                "kind": "refusal",
                "ts": onset + n * 750,
                "source_ip": stuffer,
                "code": "invalid_api_key",
                "key_fp": f"{rng.getrandbits(32):08x}",
            }
        )
    for p, after_s in zip(found, (120, 210), strict=True):
        for m in range(20):
            for _ in range(_poisson(rng, 20)):
                ts = onset + after_s * 1000 + m * MINUTE + rng.randrange(MINUTE)
                events.append(_usage(p, ts, stuffer, _tokens(rng, 800)))
    truth.append(
        {
            "type": "stuffing",
            "source_ip": stuffer,
            "onset_ts": onset,
            "keys": [
                {"key_id": p.key_id, "first_use_ts": onset + after_s * 1000}
                for p, after_s in zip(found, (120, 210), strict=True)
            ],
        }
    )
    for t in truth:
        t["onset"] = datetime.fromtimestamp(t["onset_ts"] / 1000, UTC).isoformat()
    return events, truth


def generate(
    seed: int = 7, days: int = 7, n_keys: int = 50
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(normal events, abuse events, ground truth); each list sorted by ``ts``."""
    rng = random.Random(seed)
    keys = profiles(rng, n_keys)
    normal = sorted(normal_events(rng, keys, days), key=lambda e: e["ts"])
    injected, truth = abuse_events(random.Random(seed * 1_000_003 + 1), keys, days)
    abuse = sorted(normal + injected, key=lambda e: e["ts"])
    return normal, abuse, truth


def write_jsonl_gz(path: Path, events: list[dict[str, Any]]) -> None:
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as gz:
        for e in events:
            gz.write(json.dumps(e, separators=(",", ":")).encode() + b"\n")
    path.write_bytes(raw.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--keys", type=int, default=50)
    args = parser.parse_args(argv)
    normal, abuse, truth = generate(args.seed, args.days, args.keys)
    args.out.mkdir(parents=True, exist_ok=True)
    write_jsonl_gz(args.out / "normal.jsonl.gz", normal)
    write_jsonl_gz(args.out / "abuse.jsonl.gz", abuse)
    meta = {
        "generator": "bench/traces/generate.py",
        "seed": args.seed,
        "days": args.days,
        "keys": args.keys,
        "start_ts": START,
        "normal_events": len(normal),
        "abuse_events": len(abuse),
        "abuse": truth,
    }
    (args.out / "abuse.truth.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"normal: {len(normal)} events; abuse: {len(abuse)} events; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
