"""Issue 6's figures: detection delay per abuse type, false suspensions on normal traffic,
requests admitted after a revoke or a leak report returns, and backtest speed.

Traces: the shipped ``bench/traces`` pair, plus ``VARIANTS`` more weeks made by the same
generator with other seeds (other keys, other onsets), so that the delays have a median and
a max. Delays are in *event* minutes: from the abuse's onset to the event that the detector
suspends on (for stuffing, from the first use of a found key from the stuffing source).
"""

from __future__ import annotations

import gzip
import json
import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import Section
from bench.traces.generate import generate

TRACES = Path(__file__).resolve().parent / "traces"
VARIANTS = tuple(range(1001, 1010))  # seeds of the extra weeks (never used for tuning)
MINUTE_MS = 60_000
API = "arn:aws:execute-api:us-east-1:123456789012:bench/prod"


def _read(name: str) -> list[dict[str, Any]]:
    with gzip.open(TRACES / name, "rt") as f:
        return [json.loads(line) for line in f]


def _delays(report: Any, truth: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Event minutes from onset to suspension, per abuse type (inf: never suspended)."""
    suspended = report.first_suspensions()
    out: dict[str, list[float]] = {}
    for case in truth:
        if case["type"] == "stuffing":
            flags = [f for f in report.findings if f.subject == case["source_ip"]]
            flag = (flags[0].ts - case["onset_ts"]) / MINUTE_MS if flags else float("inf")
            out.setdefault("stuffing: source flagged", []).append(flag)
            for key in case["keys"]:
                f = suspended.get(key["key_id"])
                delay = (f.ts - key["first_use_ts"]) / MINUTE_MS if f else float("inf")
                out.setdefault("stuffing: found key suspended", []).append(delay)
        else:
            f = suspended.get(case["key_id"])
            delay = (f.ts - case["onset_ts"]) / MINUTE_MS if f else float("inf")
            out.setdefault(case["type"], []).append(delay)
    return out


def _abused(truth: list[dict[str, Any]]) -> set[str]:
    keys = set()
    for case in truth:
        if case["type"] == "stuffing":
            keys |= {k["key_id"] for k in case["keys"]}
        else:
            keys.add(case["key_id"])
    return keys


def run() -> Section:
    from functions.detector import backtest

    sec = Section("detect")
    meta = json.loads((TRACES / "abuse.truth.json").read_text())
    normal, abuse = _read("normal.jsonl.gz"), _read("abuse.jsonl.gz")

    # -- backtest speed ---------------------------------------------------------------
    runs = [backtest.run(abuse) for _ in range(3)]
    speed = statistics.median(r.events_per_s for r in runs)
    sec.add(
        "backtest speed (shipped abuse week, median of 3)",
        round(speed),
        unit="events/s",
        baseline=f"{runs[0].events} events, {runs[0].keys} keys",
    )

    # -- false suspensions ------------------------------------------------------------
    shipped_normal = backtest.run(normal)
    false = len(shipped_normal.first_suspensions())
    alerts = sum(1 for f in shipped_normal.findings if f.action == "alert")
    sec.add(
        "false suspensions, shipped 7-day normal trace (50 keys)",
        false,
        target="0",
        ok=false == 0,
        note=f"{alerts} alert(s), no suspension",
    )

    # -- detection delay --------------------------------------------------------------
    delays = _delays(runs[0], meta["abuse"])
    extra_false = 0
    variant_alerts = 0
    for seed in VARIANTS:
        v_normal, v_abuse, v_truth = generate(seed, meta["days"], meta["keys"])
        report = backtest.run(v_abuse)
        for name, values in _delays(report, v_truth).items():
            delays[name] += values
        extra_false += len(set(report.first_suspensions()) - _abused(v_truth))
        clean = backtest.run(v_normal)
        extra_false += len(clean.first_suspensions())
        variant_alerts += sum(1 for f in clean.findings if f.action == "alert")
    weeks = 1 + len(VARIANTS)
    for name, values in delays.items():
        caught = [v for v in values if v != float("inf")]
        median = statistics.median(values) if caught else float("inf")
        worst = max(values)
        target = "<= 2" if name in ("burst", "stuffing: found key suspended") else ""
        sec.add(
            f"detection delay, {name} (median / max, {len(values)} cases in {weeks} weeks)",
            f"{median:.2f} / {worst:.2f}",
            unit="event min",
            target=target,
            ok=(worst <= 2) if target else None,
            note=f"missed: {len(values) - len(caught)}",
        )
    sec.add(
        f"false suspensions, {len(VARIANTS)} more generated weeks (normal and abuse)",
        extra_false,
        target="0",
        ok=extra_false == 0,
        note=f"{variant_alerts} alert(s) on the normal weeks",
    )

    # -- sensitivity: how small a burst is caught within 2 minutes --------------------
    burst = next(c for c in meta["abuse"] if c["type"] == "burst")
    row = []
    for tpm in (3_000, 6_000, 12_000, 25_000, 50_000):
        injected = _inject_burst(normal, burst["key_id"], burst["onset_ts"], tpm)
        found = backtest.run(injected).first_suspensions().get(burst["key_id"])
        row.append(f"{tpm // 1000}k: " + (f"{(found.ts - burst['onset_ts']) / MINUTE_MS:.1f}"
                                           if found else "missed"))  # fmt: skip
    sec.add(
        "burst size (tokens/min on a light key) -> delay in event min",
        "; ".join(row),
        note="20-minute bursts of 1,500-token requests injected into the normal week; 3k and "
        "6k are 2 and 4 requests/min, under the 5 a token spike needs (min_requests)",
    )

    # -- revocation takes effect at once ----------------------------------------------
    late_revoke, started_revoke = _after_return(_revoke_with_function)
    sec.add(
        "requests admitted after the revoke function returned",
        late_revoke,
        baseline=f"{started_revoke} requests started after it, 3 runs x 8 clients",
        target="0",
        ok=late_revoke == 0,
    )
    late_leak, started_leak = _after_return(_revoke_with_webhook)
    sec.add(
        "requests admitted after the leak webhook returned",
        late_leak,
        baseline=f"{started_leak} requests started after it, 3 runs x 8 clients",
        target="0",
        ok=late_leak == 0,
    )
    return sec


def _inject_burst(
    events: list[dict[str, Any]], key_id: str, onset: int, tpm: int
) -> list[dict[str, Any]]:
    tenant = next(e["tenant_id"] for e in events if e.get("key_id") == key_id)
    per_request = 1500
    gap_ms = max(1, int(MINUTE_MS * per_request / tpm))
    burst = [
        {
            "ts": ts,
            "key_id": key_id,
            "tenant_id": tenant,
            "prompt_tokens": 1050,
            "completion_tokens": 450,
            "source_ip": f"185.220.{(ts // gap_ms) % 3}.7",
        }
        for ts in range(onset, onset + 20 * MINUTE_MS, gap_ms)
    ]
    return sorted(events + burst, key=lambda e: e["ts"])


# -- revocation lag: drive the real authorizer, revoke, count what gets in after ----------
class _Ctx:
    function_name = "bench"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def _event(secret: str) -> dict[str, Any]:
    return {
        "type": "REQUEST",
        "methodArn": f"{API}/POST/v1/chat/completions",
        "resource": "/v1/chat/completions",
        "path": "/v1/chat/completions",
        "httpMethod": "POST",
        "headers": {"Authorization": f"Bearer {secret}"},
        "multiValueHeaders": {"Authorization": [f"Bearer {secret}"]},
        "requestContext": {"requestId": str(uuid.uuid4()), "stage": "prod"},
    }


def _key() -> tuple[str, str]:
    from functions.keys.service import KeyService

    svc = KeyService()
    name = f"d{uuid.uuid4().hex[:10]}"
    svc.create_plan(name, requests_per_minute=10**6, actor="bench")
    svc.create_tenant(name, plan=name, actor="bench")
    key = svc.create_key(name, actor="bench")
    return key["key_id"], key["secret"]


def _revoke_with_function(key_id: str, secret: str) -> None:
    from functions.revoke.handler import handler

    answer = handler({"key_id": key_id, "reason": "bench", "actor": "bench"}, _Ctx())
    assert answer["ok"], answer


_webhook: dict[str, Any] = {}


def _revoke_with_webhook(key_id: str, secret: str) -> None:
    from functions.webhook import handler as webhook

    signer = _webhook["signer"]
    body = json.dumps([{"token": secret, "type": "tollgate_api_key", "url": "bench"}]).encode()
    headers = {
        "Github-Public-Key-Identifier": signer.identifier,
        "Github-Public-Key-Signature": signer.sign(body),
    }
    event = {"body": body.decode(), "isBase64Encoded": False, "headers": headers,
             "requestContext": {"requestId": str(uuid.uuid4())}}  # fmt: skip
    answer = webhook.handler(event, _Ctx())
    assert answer["statusCode"] == 200 and "true_positive" in answer["body"], answer


def _after_return(revoke: Callable[[str, str], None], runs: int = 3) -> tuple[int, int]:
    """Hammer a key from 8 threads, revoke it with ``revoke``; requests admitted that
    started after ``revoke`` returned, and how many started after it."""
    from functions.authorizer import handler

    if revoke is _revoke_with_webhook and "server" not in _webhook:
        _start_key_server()
    late = total = 0
    for _ in range(runs):
        key_id, secret = _key()
        stop = threading.Event()
        outcomes: list[tuple[float, bool]] = []
        lock = threading.Lock()

        threads = [
            threading.Thread(target=_hammer, args=(handler, secret, stop, outcomes, lock))
            for _ in range(8)
        ]
        for t in threads:
            t.start()
        time.sleep(0.3)
        revoke(key_id, secret)
        returned = time.perf_counter()
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join()
        after = [ok for started, ok in outcomes if started > returned]
        total += len(after)
        late += sum(after)
    return late, total


def _hammer(
    handler: Any,
    secret: str,
    stop: threading.Event,
    outcomes: list[tuple[float, bool]],
    lock: threading.Lock,
) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        out = handler.handler(_event(secret), _Ctx())
        allowed = out["policyDocument"]["Statement"][0]["Effect"] == "Allow"
        with lock:
            outcomes.append((started, allowed))


def _start_key_server() -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from functions.respond.config import ENV_KEYS_URL
    from functions.webhook import handler as webhook

    class Signer:
        identifier = "bench-key"
        private = ec.generate_private_key(ec.SECP256R1())

        def sign(self, body: bytes) -> str:
            import base64

            return base64.b64encode(self.private.sign(body, ec.ECDSA(hashes.SHA256()))).decode()

    signer = Signer()
    pem = signer.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    document = json.dumps(
        {"public_keys": [{"key_identifier": signer.identifier, "key": pem.decode()}]}
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ[ENV_KEYS_URL] = f"http://127.0.0.1:{server.server_port}/keys"
    webhook.reset()
    _webhook.update(server=server, signer=signer)
