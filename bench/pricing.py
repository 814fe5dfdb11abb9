"""Issue 14's price lookup on the hot path, through the local gateway (the real authorizer and
API handlers on moto): DynamoDB round trips a per-model price adds per request in steady
state, and the latency of a chat request priced from the catalogue against one on a plan
with a flat 0.1.0 price (main's behaviour), timed alternately in the same run."""

from __future__ import annotations

import statistics
import uuid
from typing import Any

from bench.api import CHAT, _post, _start_gateway
from bench.common import Section, count_calls, import_time_ms, paired


def _tenant(svc: Any, **plan: Any) -> str:
    name = f"p{uuid.uuid4().hex[:10]}"
    svc.create_plan(name, models=["tollgate-echo"], requests_per_minute=10**6, **plan)
    svc.create_tenant(name, plan=name)
    return str(svc.create_key(name)["secret"])


def run() -> Section:
    from functions.api import handler
    from functions.common import ddb
    from functions.keys.service import KeyService

    sec = Section("pricing")
    svc = KeyService()
    svc.set_price("tollgate-echo", prompt="0.5", completion="1.5", actor="bench")
    flat = _tenant(svc, price_per_1k_prompt="0.0005", price_per_1k_completion="0.0015")
    catalogue = _tenant(svc)  # no flat price: the operator's catalogue price applies
    server, url = _start_gateway()
    try:
        for secret in (flat, catalogue):
            for _ in range(3):
                assert _post(url, secret, CHAT) == 200  # warm: plan and prices cached
        prices = handler.services().prices
        before = prices.round_trips
        n = 50
        with count_calls(ddb.client(), ddb.client_once()) as calls:
            for _ in range(n):
                assert _post(url, catalogue, CHAT) == 200
        with count_calls(ddb.client(), ddb.client_once()) as flat_calls:
            for _ in range(n):
                assert _post(url, flat, CHAT) == 200
        extra = (len(calls) - len(flat_calls)) / n
        reads = (prices.round_trips - before) / n
        sec.add(
            "price lookups in DynamoDB per chat request, steady state (catalogue price)",
            reads,
            baseline=f"all DynamoDB calls per request: catalogue {len(calls) / n:.1f}, "
            f"flat plan price {len(flat_calls) / n:.1f} (difference {extra:+.2f})",
            target="0 (one GetItem per container per TOLLGATE_PRICE_TTL_S, 60 s)",
            ok=reads == 0 and extra == 0,
        )
        t_cat, t_flat = paired(
            lambda: _post(url, catalogue, CHAT), lambda: _post(url, flat, CHAT), 150
        )
        ratio = statistics.median(t_cat) / statistics.median(t_flat)
        sec.add(
            "chat request latency, catalogue price / flat 0.1.0 plan price (median, paired)",
            round(ratio, 3),
            unit="x",
            baseline=f"flat plan price: median {statistics.median(t_flat):.2f} ms",
            target="<= 1.10",
            ok=ratio <= 1.10,
        )
        cold = import_time_ms(
            "from functions.pricing.catalogue import default_price; "
            "default_price('upstream:gpt-4o')",
            runs=3,
        )
        sec.add(
            "first genai-prices default in a cold container (import + lookup, once)",
            round(cold),
            unit="ms",
            baseline="then cached per model for the container's life",
            target="report",
        )
    finally:
        server.shutdown()
    return sec
