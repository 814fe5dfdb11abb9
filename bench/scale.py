"""The gate at any scale (issue 12): what a request costs as the keys a tenant has ever had
grow from 1 to 100,000 (half of them revoked), each figure measured in the same run.

* write units per authorization and per chat completion, every table and index included,
  priced by DynamoDB's item-size rules on the items moto actually holds before and after
  each write (``tollgate/local/meter.py``, ``tollgate/local/capacity.py``);
* the authorizer's latency at each size, measured interleaved (round robin over the sizes,
  so load on the machine falls on every size alike), as a ratio to the 1-key tenant;
* the seconds to create one more key at each size, through the real ``KeyService``;
* the 0.1.0 layout's figures for comparison come from docs/capacity.md (measured then).

Tenants of 1,000 keys and more are seeded in bulk (``BatchWriteItem`` of the very items
``KeyService`` writes for a key: ``Secret``, ``Key``, the gate's key item; no audit record),
``TOLLGATE_BENCH_SCALE_MAX`` caps the largest size (default 100,000).
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from typing import Any

from bench.common import Section, percentile
from tollgate.local.bulk import bulk_client, seed_keys

SIZES = (1, 1_000, 10_000, 100_000)
LATENCY_ROUNDS = 60


def _sizes() -> tuple[int, ...]:
    cap = int(os.environ.get("TOLLGATE_BENCH_SCALE_MAX", "100000"))
    return tuple(s for s in SIZES if s <= cap)


class _Tenant:
    def __init__(self, svc: Any, client: Any, size: int) -> None:
        self.name = f"s{size}-{uuid.uuid4().hex[:6]}"
        svc.create_plan(self.name, models=["tollgate-echo"], requests_per_minute=10**7,
                        requests_per_month=10**9, tokens_per_month=10**12)  # fmt: skip
        svc.create_tenant(self.name, plan=self.name)
        started = time.perf_counter()
        if size > 1:
            seed_keys(bulk_client(), self.name, size - 1)
        self.seed_seconds = time.perf_counter() - started
        key = svc.create_key(self.name)
        self.key_id, self.secret = key["key_id"], key["secret"]
        self.size = size


def run(server: Any = None) -> Section:
    from bench.api import CHAT, _post, _start_gateway
    from bench.gate import _Ctx, _event
    from functions.authorizer import handler
    from functions.common import ddb
    from functions.keys.service import KeyService

    sec = Section("scale")
    if server is None:
        sec.add("skipped", "no moto server handed to the section", ok=None)
        return sec
    svc, client = KeyService(), ddb.client()
    tenants = [_Tenant(svc, client, size) for size in _sizes()]
    gateway, url = _start_gateway()
    try:
        rows = {t.size: _measure(t, svc, server, url, handler, _Ctx, _event, _post, CHAT)
                for t in tenants}  # fmt: skip
        latency = _latencies(tenants, handler, _Ctx, _event)
    finally:
        gateway.shutdown()

    small, large = rows[min(rows)], rows[max(rows)]
    for what, key in (("authorization", "auth_wcu"), ("chat completion", "chat_wcu")):
        values = " / ".join(f"{rows[s][key]:g}" for s in rows)
        ratio = large[key] / small[key]
        sec.add(
            f"write units per {what} at {' / '.join(f'{s:,}' for s in rows)} keys",
            values,
            target="constant (largest / smallest <= 1.05)"
            + ("; <= 0.1.0's 1-key figure + 1" if key == "auth_wcu" else ""),
            ok=ratio <= 1.05 and (key != "auth_wcu" or large[key] <= 2 + 1),
            baseline="0.1.0: ~1 / 50 / — (refused past ~8,000 keys) per authorization "
            "(docs/capacity.md), +1 for its by_plan index",
            note="every table and index, DynamoDB's item-size rules (tollgate/local/meter.py)",
        )
    sec.add(
        "bytes the authorization reads back per request, smallest / largest tenant",
        f"{small['returned']:.0f} / {large['returned']:.0f}",
        target="constant",
        ok=large["returned"] <= small["returned"] * 1.05 + 16,
        baseline="0.1.0: ALL_NEW of the tenant item, 130 KB at 1,000 keys",
    )
    sec.add(
        "DynamoDB round trips per authorization, steady state, largest tenant",
        large["round_trips"],
        target="2 (the ceiling; docs/architecture.md says why not 1)",
        ok=large["round_trips"] <= 2,
    )
    p50 = {s: percentile(v, 50) for s, v in latency.items()}
    p99 = {s: percentile(v, 99) for s, v in latency.items()}
    lo, hi = min(p50), max(p50)
    sec.add(
        f"authorizer latency p50 at {hi:,} keys / at {lo:,} key (interleaved, same run)",
        round(p50[hi] / p50[lo], 2),
        unit="x",
        baseline=f"{p50[lo]:.2f} ms vs {p50[hi]:.2f} ms; p99 {p99[lo]:.2f} / {p99[hi]:.2f} ms",
        target="<= 1.1",
        ok=p50[hi] / p50[lo] <= 1.1,
    )
    create = {t.size: rows[t.size]["create_s"] for t in tenants}
    sec.add(
        f"seconds to create one more key at {hi:,} keys / at {lo:,} key (median of 5)",
        round(create[hi] / create[lo], 2),
        unit="x",
        baseline=" / ".join(f"{create[s] * 1000:.1f} ms" for s in create),
        target="<= 1.5",
        ok=create[hi] / create[lo] <= 1.5,
    )
    big = max(tenants, key=lambda t: t.size)
    sec.add(
        f"seconds to seed {big.size - 1:,} keys in bulk (BatchWriteItem, moto)",
        round(big.seed_seconds, 1),
        unit="s",
        target="minutes, not hours",
        ok=big.seed_seconds < 900,
        baseline="0.1.0: 286 s for 2,000 keys through KeyService (every create rewrote "
        "the tenant item)",
    )
    return sec


def _measure(t: _Tenant, svc: Any, server: Any, url: str, handler: Any, ctx: Any, event: Any,
             post: Any, chat: Any) -> dict[str, float]:  # fmt: skip
    for _ in range(3):  # warm: facts and shard view cached, windows open
        handler.handler(event(t.secret), ctx())
    n = 20
    with server.metered() as m:
        for _ in range(n):
            handler.handler(event(t.secret), ctx())
    auth_wcu = m.write_units_total / n
    round_trips = sum(m.round_trips.values()) / n
    returned = sum(m.bytes_returned.values()) / n
    post(url, t.secret, chat)  # warm the gateway's path
    with server.metered() as c:
        for _ in range(10):
            assert post(url, t.secret, chat) == 200
    chat_wcu = c.write_units_total / 10
    times = []
    for i in range(5):
        started = time.perf_counter()
        svc.create_key(t.name, principal=f"late-{i}")
        times.append(time.perf_counter() - started)
    return {"auth_wcu": round(auth_wcu, 2), "chat_wcu": round(chat_wcu, 2),
            "round_trips": round_trips, "returned": returned,
            "create_s": statistics.median(times)}  # fmt: skip


def _latencies(
    tenants: list[_Tenant], handler: Any, ctx: Any, event: Any
) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {t.size: [] for t in tenants}
    for _ in range(LATENCY_ROUNDS):
        for t in tenants:
            started = time.perf_counter()
            handler.handler(event(t.secret), ctx())
            out[t.size].append((time.perf_counter() - started) * 1000)
    return out
