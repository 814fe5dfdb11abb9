"""Spend budgets (issue 14 item 3, docs/billing.md "Spend budgets"), through the local gateway
(the real authorizer and API handlers behind an HTTP server that does what API Gateway does):

* spend overshoot with 32 concurrent clients against a delegated key's spend budget and
  against a tenant's monthly spend spread over 4 counter shards, 5 rounds each: what the
  usage events and the counters say was spent, minus the budget (0 = exact);
* what money costs per request: DynamoDB write units (``tollgate/local/meter.py``, every
  table and index) and round trips of a chat completion with both spend budgets, against
  the same request on token budgets only, measured in the same run;
* the sizes of the two items every request writes, with the spend attributes on them
  (a write unit per started KB: they must stay <= 1 KB).

Figures are reported; only the 0 overshoot and the 1 KB are targets.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from typing import Any

from bench.common import Section, count_calls

CHAT = {"model": "tollgate-echo", "messages": [{"role": "user", "content": "hello there"}],
        "max_tokens": 4}  # fmt: skip
CLIENTS = 32
ROUNDS = 5
PRICES = {"price_per_1k_prompt": "0.002", "price_per_1k_completion": "0.004"}


def _plan(svc: Any, **limits: Any) -> str:
    name = f"m{uuid.uuid4().hex[:10]}"
    svc.create_plan(name, models=["tollgate-echo"], **PRICES, **limits)
    svc.create_tenant(name, plan=name)
    return name


def _storm(url: str, secret: str, per_client: int = 4) -> Counter[int]:
    from bench.api import _post

    barrier = threading.Barrier(CLIENTS)
    codes: Counter[int] = Counter()
    lock = threading.Lock()

    def client() -> None:
        barrier.wait()
        for _ in range(per_client):
            code = _post(url, secret, CHAT)
            with lock:
                codes[code] += 1

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return codes


def _billed(tenant_id: str) -> int:
    from functions.common.models import UsageEvent

    return sum(int(e.cost_micros or 0) for e in UsageEvent.by_tenant.query(tenant_id))


def run(server: Any = None) -> Section:
    from bench.api import _post, _start_gateway
    from functions.common import ddb
    from functions.common.models import GateItem
    from functions.gate import admin
    from functions.gate import items as it
    from functions.keys.service import KeyService
    from tollgate.local.capacity import item_size

    sec = Section("spend budgets")
    svc = KeyService()
    table = str(GateItem.Meta.table_name)
    gateway, url = _start_gateway()
    try:
        # -- a delegated key's spend budget ----------------------------------------------
        budget = 1_000  # micro-dollars: about 50 requests of "hello there"
        overs, admitted = [], []
        for _ in range(ROUNDS):
            tenant_id = _plan(svc)
            parent = svc.create_key(tenant_id)["key_id"]
            child = svc.delegate_key(parent, principal="agent", spend_budget_micros=budget)
            codes = _storm(url, child["secret"])
            entry = admin.get_key_item(table, child["key_id"], parent) or {}
            overs.append(max(0, _billed(tenant_id) - budget, int(entry[it.SPENT]) - budget))
            admitted.append(codes[200])
        sec.add(
            f"spend overshoot, {CLIENTS} clients x 4 requests against a delegated key's spend "
            f"budget of {budget} micro-dollars, {ROUNDS} rounds",
            " ".join(map(str, overs)),
            unit="micro-dollars",
            target="0 every round",
            ok=all(o == 0 for o in overs),
            baseline=f"admitted per round: {' '.join(map(str, admitted))} of {CLIENTS * 4}",
        )

        # -- a tenant's monthly spend over 4 counter shards ------------------------------
        limit = 1_000
        overs, admitted, unspent = [], [], []
        for _ in range(ROUNDS):
            tenant_id = _plan(svc, spend_per_month="0.001", counter_shards=4)
            secret = svc.create_key(tenant_id)["secret"]
            codes = _storm(url, secret)
            spent = admin.shard_totals(table, tenant_id, "live")["spend_micros"]
            overs.append(max(0, _billed(tenant_id) - limit, int(spent) - limit))
            admitted.append(codes[200])
            unspent.append(limit - int(spent))
        sec.add(
            f"spend overshoot, {CLIENTS} clients x 4 requests against a tenant's monthly spend "
            f"of {limit} micro-dollars over 4 counter shards, {ROUNDS} rounds",
            " ".join(map(str, overs)),
            unit="micro-dollars",
            target="0 every round",
            ok=all(o == 0 for o in overs),
            baseline=f"admitted per round: {' '.join(map(str, admitted))}; left unspent "
            f"(less than a request's worst case): {' '.join(map(str, unspent))}",
        )

        # -- what money costs per request ------------------------------------------------
        tokens_only = _plan(svc, tokens_per_month=10**9)
        t_parent = svc.create_key(tokens_only)["key_id"]
        t_child = svc.delegate_key(t_parent, principal="a", token_budget=10**9)
        money = _plan(svc, tokens_per_month=10**9, spend_per_month="1000000")
        m_parent = svc.create_key(money)["key_id"]
        m_child = svc.delegate_key(m_parent, principal="a", token_budget=10**9,
                                   spend_budget_micros=10**12)  # fmt: skip
        figures: dict[str, dict[str, float]] = {}
        for label, secret in (("tokens", t_child["secret"]), ("money", m_child["secret"])):
            for _ in range(3):
                _post(url, secret, CHAT)  # warm: facts, plan and shard views cached
            n = 20
            with count_calls(ddb.client(), ddb.client_once()) as calls:
                for _ in range(n):
                    assert _post(url, secret, CHAT) == 200
            row = {"round_trips": len(calls) / n}
            if server is not None:
                with server.metered() as m:
                    for _ in range(n):
                        assert _post(url, secret, CHAT) == 200
                row["wcu"] = m.write_units_total / n
            figures[label] = row
        sec.add(
            "DynamoDB round trips per chat completion with spend budgets (key + tenant), "
            "authorizer + API",
            figures["money"]["round_trips"],
            baseline=f"token budgets only, same run: {figures['tokens']['round_trips']:g}",
            target="equal (no round trip for money)",
            ok=figures["money"]["round_trips"] == figures["tokens"]["round_trips"],
        )
        if server is not None:
            sec.add(
                "write units per chat completion with spend budgets (key + tenant)",
                round(figures["money"]["wcu"], 2),
                baseline=f"token budgets only, same run: {figures['tokens']['wcu']:.2f}",
                target="report (every table and index, tollgate/local/meter.py)",
            )

        # -- item sizes --------------------------------------------------------------------
        client = ddb.client()
        address = it.key_address(m_child["key_id"], m_parent)
        key_raw = client.get_item(TableName=table, Key=address, ConsistentRead=True)["Item"]
        shard_raw = client.get_item(
            TableName=table, Key=it.shard_address(money, "live", 0), ConsistentRead=True
        )["Item"]
        key_bytes, shard_bytes = item_size(key_raw), item_size(shard_raw)
        sec.add(
            "bytes of the key item / counter shard with the spend attributes",
            f"{key_bytes} / {shard_bytes}",
            unit="B",
            target="<= 1024 each (one write unit)",
            ok=key_bytes <= 1024 and shard_bytes <= 1024,
        )
    finally:
        gateway.shutdown()
    return sec
