"""Issue 14's threshold-notice figure, through the local stack: 32 concurrent clients send
real chat completions through the local gateway (the real authorizer and API) for 4 tenants
until their monthly request limits refuse them; the local stream pollers run the real
aggregator (which emits the notices) and the real delivery function, which POSTs to a
receiver on 127.0.0.1. Counts delivered notices against the expected ones
(``python -m bench notices``)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.api import CHAT, _post, _start_gateway
from bench.common import Section

TENANTS = 4
LIMIT = 40  # requests per month per tenant
CLIENTS = 32
PER_CLIENT = 10  # 32 x 10 = 320 attempts for 4 x 40 admissions: every tenant hits its limit


class _Receiver:
    def __init__(self) -> None:
        self.bodies: list[tuple[bytes, str]] = []
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    outer.bodies.append((body, self.headers.get("Tollgate-Signature") or ""))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def run(server: Any) -> Section:
    from functions.common.config import TableNames
    from functions.common.models import Notice
    from functions.keys.service import KeyService
    from functions.notices.emitter import NoticeEmitter, TableLimits
    from functions.notices.signing import new_secret, signature
    from functions.notices.store import NoticeStore
    from functions.usage.reports import rollups
    from tollgate.local.pollers import start_pollers

    sec = Section("threshold notices")
    svc = KeyService()
    receiver = _Receiver()
    store = NoticeStore(Notice.Meta.table_name)
    tenants: list[tuple[str, str, str]] = []  # tenant, secret, webhook secret
    for _ in range(TENANTS):
        name = f"n{uuid.uuid4().hex[:10]}"
        svc.create_plan(name, models=["tollgate-echo"], requests_per_month=LIMIT)
        svc.create_tenant(name, plan=name)
        key = svc.create_key(name)
        hook = new_secret()
        store.put_webhook(name, url=receiver.url, secret=hook)
        tenants.append((name, key["secret"], hook))
    pollers = start_pollers(moto=server, poll_interval_s=0.05)
    gateway, url = _start_gateway()
    try:
        codes: Counter[int] = Counter()
        lock = threading.Lock()
        barrier = threading.Barrier(CLIENTS)

        def client(n: int) -> None:
            _, secret, _ = tenants[n % TENANTS]
            barrier.wait()
            for _ in range(PER_CLIENT):
                code = _post(url, secret, CHAT)
                with lock:
                    codes[code] += 1

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sent_s = time.perf_counter() - t0
        expected = TENANTS * 3
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            pollers.wait_idle(30)
            if len(receiver.bodies) >= expected:
                pollers.wait_idle(30)  # anything more would be a duplicate: let it arrive
                break
        settled_s = time.perf_counter() - t0
    finally:
        gateway.shutdown()
        pollers()
        receiver.server.shutdown()

    hooks = {name: hook for name, _, hook in tenants}
    events = [json.loads(body) for body, _ in receiver.bodies]
    ids = Counter(e["id"] for e in events)
    valid = sum(
        1
        for (body, header), e in zip(receiver.bodies, events, strict=True)
        if header == signature(hooks[e["tenant_id"]], int(header[2:].split(",")[0]), body)
    )
    wanted = {f"ntc_{t}_{e['period']}_requests_{p}" for e in events[:1] for t in hooks
              for p in (50, 80, 100)}  # fmt: skip
    duplicates = sum(c - 1 for c in ids.values())
    missing = len(wanted - set(ids)) if events else expected
    sec.add(
        f"threshold events delivered exactly once each under {CLIENTS} concurrent clients "
        "crossing them",
        f"{len(ids)} of {expected}",
        unit="notices",
        baseline=f"{TENANTS} tenants x 3 thresholds (requests limit {LIMIT}); "
        f"{codes[200]} admitted, {codes[429]} refused of {CLIENTS * PER_CLIENT}; "
        f"duplicates {duplicates}, missing {missing}, signatures valid {valid}/{len(events)}",
        target="delivered = expected, duplicates 0, missing 0",
        ok=len(ids) == expected
        and duplicates == 0
        and missing == 0
        and valid == len(events)
        and codes[200] == TENANTS * LIMIT,
        note=f"requests sent in {sent_s:.1f} s; last notice delivered by {settled_s:.1f} s",
    )

    # A new container (nothing remembered) sees the same month totals: no notice is new.
    emitter = NoticeEmitter(store, TableLimits(TableNames.from_env().tenants,
                                               TableNames.from_env().plans))  # fmt: skip
    for name in hooks:
        for key, counters in rollups(name, "month#"):
            emitter.observe(name, key.sk, counters.as_dict())
    sec.add(
        "notices written again when a fresh aggregator container re-reads the same totals",
        len(emitter.emitted),
        unit="notices",
        baseline=f"{expected} conditional puts refused (the notices exist)",
        target="0",
        ok=not emitter.emitted,
    )
    return sec
