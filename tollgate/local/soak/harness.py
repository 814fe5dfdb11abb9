"""The soak's harness: the local stack in this process with faults and records, the seeded
tenants and keys, the clients, and the mid-run actions (see the package docstring)."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import random
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
import warnings
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from werkzeug.wrappers import Request, Response

from tollgate.local.faults import Faults, set_trace
from tollgate.local.soak.model import (
    ACTOR,
    AGENT_BUDGET_PER_S,
    DRAW_HEADER,
    ECHO,
    HOST,
    HTTP_ACTIONS,
    KEY_WEIGHTS,
    KEYS,
    PAID_MODEL,
    SDK_ACTIONS,
    TENANTS,
    WORDS,
    KeyInfo,
    Row,
    Sent,
    Served,
    SoakConfig,
    plans,
)


# -- GitHub's secret-scanning keys, played on loopback ----------------------------------------
class GitHub:
    """A P-256 key pair and a loopback server publishing its public key as GitHub does."""

    KEY_ID: Final = "soak-github-key"

    def __init__(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        self._private = ec.generate_private_key(ec.SECP256R1())
        pem = self._private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        document = json.dumps(
            {
                "public_keys": [
                    {"key_identifier": self.KEY_ID, "key": pem.decode(), "is_current": True}
                ]
            }
        ).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(document)))
                self.end_headers()
                self.wfile.write(document)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://{HOST}:{self._server.server_port}/meta/public_keys/secret_scanning"

    def sign(self, body: bytes) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        return base64.b64encode(self._private.sign(body, ec.ECDSA(hashes.SHA256()))).decode()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# -- the log, captured -----------------------------------------------------------------------
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


class Captured(logging.Handler):
    """Keeps every record of the functions' logger (message + extra fields) in memory."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[dict[str, Any]] = []
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        entry = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        entry["message"] = record.getMessage()
        entry["level"] = record.levelname
        if record.exc_info:
            entry["exc"] = logging.Formatter().formatException(record.exc_info)
        with self._guard:
            self.records.append(entry)

    def named(self, message: str) -> list[dict[str, Any]]:
        with self._guard:
            return [r for r in self.records if r["message"] == message]

    def text(self) -> str:
        with self._guard:
            return "\n".join(json.dumps(r, default=str) for r in self.records)


# -- the gateway, recording -----------------------------------------------------------------
EXCHANGE_PATH: Final = "/v1/auth/token"  # answers OAuth error bodies (RFC 6749), not OpenAI's


def _error_code(data: bytes, *, oauth: bool = False) -> tuple[str, bool]:
    """(error code, whether the body is the route's error body) of an error answer: the
    OpenAI error body, or on the token route the OAuth one."""
    try:
        doc = json.loads(data)
        err = doc["error"]
        if oauth:
            return str(err), isinstance(err, str) and isinstance(doc["error_description"], str)
        ok = isinstance(err, dict) and all(
            isinstance(err.get(k), str) for k in ("message", "type", "code")
        )
        return (str(err.get("code", "")) if isinstance(err, dict) else ""), ok
    except (ValueError, KeyError, TypeError):
        return "", False


def _describe(exc: BaseException) -> str:
    """``Type: message`` of an exception and the innermost frame it was raised in."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    if frames:
        where = f" at {'/'.join(frames[-1].filename.rsplit('/', 2)[-2:])}:{frames[-1].lineno}"
    return f"{type(exc).__name__}: {str(exc)[:200]}{where}"


def recording_gateway(
    ledger: list[Served],
    lock: threading.Lock,
    access_log: Callable[[dict[str, Any]], None] | None = None,
    faults: Faults | None = None,
) -> Any:
    """A :class:`~tollgate.local.gateway.LocalGateway` that records what it serves, tags
    every DynamoDB call with the request id, and answers ``x-amzn-RequestId`` as API
    Gateway does."""
    from functions.authorizer import handler as authorizer
    from functions.gate.store import Admission
    from tollgate.local import gateway as local_gateway

    state = threading.local()
    load = local_gateway._load

    def recording_load(path: str) -> Any:
        """The function at ``path``, recording what it raises (API Gateway's execution log
        names a failed integration's or authorizer's error; the local gateway swallows it)."""
        fn = load(path)
        if fn is None:
            return None

        def call(event: Any, context: Any) -> Any:
            try:
                return fn(event, context)
            except Exception as exc:
                if str(exc) != "Unauthorized":
                    state.failure = f"{path}: {_describe(exc)}"
                raise

        return call

    local_gateway._load = recording_load
    gate_store = authorizer.store()
    admit = gate_store.admit

    def recording_admit(*args: Any, **kwargs: Any) -> Any:
        result = admit(*args, **kwargs)
        if isinstance(result, Admission):
            state.item = (result.key_item, result.shard_item)
        return result

    gate_store.admit = recording_admit  # type: ignore[method-assign]

    def _traced(body: Any, rid: str, headers: Any) -> Iterator[bytes]:
        set_trace(rid)
        if faults is not None:
            faults.alias(rid, headers.get(DRAW_HEADER))
        try:
            yield from body
        finally:
            set_trace(None)
            if faults is not None:
                faults.alias(rid, None)

    class RecordingGateway(local_gateway.LocalGateway):
        def _request_context(
            self, request: Request, route: Any, request_id: str, now: float
        ) -> dict[str, Any]:
            state.request_id = request_id
            set_trace(request_id)
            if faults is not None:  # this request's faults replay from the seed
                faults.alias(request_id, request.headers.get(DRAW_HEADER))
            return super()._request_context(request, route, request_id, now)

        def _authorize(
            self,
            request: Request,
            route: Any,
            params: dict[str, str],
            rc: dict[str, Any],
            log: dict[str, Any],
        ) -> dict[str, Any] | Response:
            state.auth_t0 = time.time()
            outcome = super()._authorize(request, route, params, rc, log)
            if isinstance(outcome, Response):
                state.auth = {401: "unauthorized", 403: "deny"}.get(outcome.status_code, "failure")
            else:
                state.auth = "allow" if outcome.get("verdict") == "allow" else "limit"
                state.context = outcome
            return outcome

        def handle(self, request: Request) -> Response:
            state.request_id = ""
            state.auth = "none"
            state.auth_t0 = 0.0
            state.context = {}
            state.item = None
            state.failure = ""
            try:
                response = super().handle(request)
            finally:
                set_trace(None)
                if faults is not None and state.request_id:
                    faults.alias(state.request_id, None)
            rid = state.request_id or f"gw-{uuid.uuid4()}"
            response.headers["x-amzn-RequestId"] = rid
            if response.direct_passthrough and response.status_code < 400:
                # A stream is produced while the server writes it, after handle() returned:
                # its DynamoDB calls (the settle, the usage event) carry this request's trace
                # and draw its faults too.
                response.response = _traced(response.response, rid, request.headers)
            # A streamed answer (SSE) passes straight through to the client: its status is
            # what is recorded; reading its body here would buffer the stream (or fail).
            if response.direct_passthrough and response.status_code >= 400:
                # a refusal on a streaming route is small: read it to check its error body
                body = b"".join(response.response)  # type: ignore[arg-type]
                response.response, response.direct_passthrough = [body], False
            data = b"" if response.direct_passthrough else response.get_data()
            code, shaped = ("", True)
            if response.status_code >= 400:
                code, shaped = _error_code(data, oauth=request.path == EXCHANGE_PATH)
            ctx: dict[str, Any] = state.context
            served = Served(
                request_id=rid,
                method=request.method,
                path=request.path,
                operation=str(ctx.get("operation", "")),
                status=response.status_code,
                code=code,
                auth=state.auth,
                key_id=str(ctx.get("key_id", "")),
                tenant_id=str(ctx.get("tenant_id", "")),
                environment=str(ctx.get("environment", "")),
                principal=str(ctx.get("principal", "")),
                auth_t0=state.auth_t0,
                month=str(ctx.get("month", "")),
                openai_body=shaped,
                traceback=b"Traceback" in data,
                failure=state.failure,
            )
            item = state.item
            served.counted = item is not None
            if item is not None and served.auth == "allow":
                entry, shard = item  # the key item and the counter shard, as written
                served.minute = int(entry["w"]) if "w" in entry else None
                served.count = int(entry["c"]) if "c" in entry else None
                served.month = str(shard.get("mo", served.month))
            with lock:
                ledger.append(served)
            return response

    return RecordingGateway(access_log=access_log)


# -- the soak --------------------------------------------------------------------------------
class Soak:
    def __init__(self, config: SoakConfig) -> None:
        self.config = config
        self.faults = Faults(seed=config.seed)
        self.keys: dict[str, KeyInfo] = {}
        self.jobs: dict[str, list[str]] = {}
        self.sent: list[Sent] = []
        self.served: list[Served] = []
        self.events: list[str] = []  # what happened mid-run, for the log
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sent_count = 0  # requests sent so far, all clients (for min_requests)
        self._stoppers: list[Callable[[], Any]] = []
        self.capture = Captured()
        self.pollers: Any = None
        self.api_url = ""
        self.started = self.ended = 0.0
        self.drained = False
        self.drain_s = 0.0

    # -- the stack -------------------------------------------------------------------------
    def start(self) -> Soak:
        os.environ["POWERTOOLS_LOG_LEVEL"] = "INFO"  # every line is searched for secrets
        # Metrics are off locally; Powertools still warns that there are none to publish.
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
        os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
        self.github = GitHub()
        self._stoppers.append(self.github.close)
        os.environ["TOLLGATE_GITHUB_KEYS_URL"] = self.github.url
        os.environ.pop("TOLLGATE_EVENT_BUS", None)  # revocation events: logged, not sent
        # Streams take a few ms per word, so a client that leaves after a few chunks
        # leaves mid-stream (the API then reads the rest and bills it).
        os.environ.setdefault("TOLLGATE_ECHO_CHUNK_DELAY_MS", "3")

        from tollgate.local import aws
        from tollgate.local.faults import trace_all_clients

        self.moto = aws.start(HOST, 0, self.faults)
        self._stoppers.append(self.moto.stop)
        aws.point_clients_at(self.moto.endpoint)
        trace_all_clients(self.faults.lost)
        self._capture_logs()

        import boto3

        from functions.common.config import TableNames
        from functions.common.models import create_tables

        create_tables(boto3.client("dynamodb"), TableNames())
        self.pollers = self._start_pollers()
        self._stoppers.append(self.pollers.stop)

        from tollgate.local.gateway import serve
        from tollgate.local.refusals import RefusalFeed

        # As make local: refused requests' access-log lines feed the spike detector.
        self.refusals = RefusalFeed().start()
        self._stoppers.append(self.refusals.stop)
        gateway = recording_gateway(self.served, self._lock, self.refusals.put, self.faults)
        server = serve(gateway, HOST, 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._stoppers.append(server.shutdown)
        self.api_url = f"http://{HOST}:{server.server_port}"
        from tollgate.local.soak.trust import TrustTraffic

        self.trust = TrustTraffic(self)  # OIDC token exchange traffic (issue 15)
        self.trust.start()
        return self

    def _capture_logs(self) -> None:
        """Every line of the functions' logger (INFO and up) in memory, for the checks;
        WARNING and up in the log file."""
        from functions.common.observability import logger as functions_logger

        std = logging.getLogger(functions_logger.service)
        std.setLevel(logging.INFO)
        path = self.config.log_path or os.path.join(tempfile.gettempdir(), "tollgate-soak.log")
        self.log_path = path
        to_file = logging.FileHandler(path, mode="w", encoding="utf-8")
        to_file.setLevel(logging.WARNING)
        for handler in list(std.handlers):  # Powertools' stdout handler: to the file instead
            to_file.setFormatter(handler.formatter)
            std.removeHandler(handler)
        std.addHandler(to_file)
        std.addHandler(self.capture)
        self._stoppers.append(to_file.close)

    def _start_pollers(self) -> Any:
        """The deployed stack's stream consumers, each handler wrapped to crash on a share
        of its invocations (tollgate/local/faults.py)."""
        from tollgate.local.faults import crashing_sources
        from tollgate.local.pollers import start_pollers, stream_consumers

        sources = stream_consumers()
        self.sources = [s.name for s in sources]
        return start_pollers(crashing_sources(sources, self.faults), moto=self.moto)

    def stop(self) -> None:
        self._stop.set()
        for stop in reversed(self._stoppers):
            with contextlib.suppress(Exception):
                stop()
        self._stoppers.clear()

    # -- seeding ---------------------------------------------------------------------------
    def seed(self) -> None:
        from functions.common import keyformat
        from functions.finetune.service import create_job
        from functions.keys import KeyService

        svc = KeyService()
        for name, options in plans(self.config.duration_s).items():
            svc.create_plan(name, actor=ACTOR, **options)
        for tenant, plan in TENANTS.items():
            svc.create_tenant(tenant, plan=plan, actor=ACTOR)
        if self.config.extra_keys:  # a tenant with many keys issued over its life (issue 12)
            from tollgate.local.bulk import bulk_client, seed_keys

            seed_keys(bulk_client(), "soak-open", self.config.extra_keys)
        rng = random.Random(self.config.seed)
        expires_at = 0.0
        for label, (tenant, env, scopes, how) in KEYS.items():
            info = KeyInfo(label, None, tenant_id=tenant, environment=env)
            if how in ("", "revoke", "suspend", "leak", "pre-revoked", "expired"):
                expires_at = max(expires_at, time.time() + 1.5) if how == "expired" else expires_at
                made = svc.create_key(
                    tenant,
                    environment=env,
                    principal=f"svc-{label}",
                    scopes=scopes,
                    actor=ACTOR,
                    expires_in=1 if how == "expired" else None,
                )
            elif how in ("delegated", "revoke-child"):
                parent = self.keys["doomed" if how == "revoke-child" else "open-live"].key_id
                budget = int(AGENT_BUDGET_PER_S * max(self.config.duration_s, 10.0))
                made = svc.delegate_key(
                    parent,
                    principal=f"agent-{label}",
                    actor=ACTOR,
                    token_budget=budget if how == "delegated" else None,
                )
            else:
                made = None
            if made is not None:
                info.secret = made["secret"]
                info.key_id = made["key_id"]
                info.scopes = frozenset(made["scopes"])
                info.principal = made["principal"]
            if how == "pre-revoked":
                svc.revoke(key_id=info.key_id, reason="soak: revoked before the run", actor=ACTOR)
            info.valid = how not in (
                "pre-revoked",
                "expired",
                "bad-checksum",
                "unknown",
                "garbage",
                "missing",
            )
            if how == "bad-checksum":
                base = self.keys["open-live"].secret or ""
                last = base[-1]
                info.secret = base[:-1] + ("A" if last != "A" else "B")
            elif how == "unknown":
                info.secret = keyformat.generate("live")
            elif how == "garbage":
                info.secret = "sk-" + "".join(rng.choice(WORDS) for _ in range(4))
            self.keys[label] = info
        for tenant, n in (("soak-open", 3), ("soak-other", 2)):
            self.jobs[tenant] = [create_job(tenant, ECHO)["id"] for _ in range(n)]
        self.trust.seed()
        while time.time() <= expires_at:
            time.sleep(0.1)

    # -- driving ---------------------------------------------------------------------------
    def drive(self) -> None:
        cfg = self.config
        self.started = time.time()
        deadline = time.monotonic() + cfg.duration_s
        self.faults.set(cfg.faults)
        threads = [
            threading.Thread(
                target=self._client,
                args=(i, "sdk" if i % 2 == 0 else "http", deadline),
                name=f"soak-client-{i}",
                daemon=True,
            )
            for i in range(cfg.clients)
        ]
        actions = [
            threading.Thread(target=self._mid_run, args=(at, what), daemon=True)
            for at, what in ((0.25, "revoke"), (0.35, "suspend"), (0.45, "leak"))
        ]
        outages = threading.Thread(target=self._outages, args=(deadline,), daemon=True)
        exchanges = threading.Thread(target=self.trust.run, args=(deadline,), daemon=True)
        for t in [*threads, *actions, outages, exchanges]:
            t.start()
        for t in threads:  # each ends: past the deadline and min_requests, or on stop
            t.join()
        exchanges.join()
        self._stop.set()
        for t in actions:  # each succeeds or gives up after its attempts (_retry)
            t.join()
        outages.join()
        self.ended = time.time()

    def _mid_run(self, at: float, what: str) -> None:
        """At ``at`` of the run: revoke, suspend, or report a leaked key (each in its own
        thread: under load an admin call can take seconds)."""
        if self._stop.wait(at * self.config.duration_s):
            return
        t0 = time.monotonic()
        label = self._stop_key(what)
        self.events.append(
            f"{time.time() - self.started:6.1f}s {what}: {label} stopped "
            f"(the call took {time.monotonic() - t0:.2f} s)"
        )

    def _outages(self, deadline: float) -> None:
        """Every ``outage_every_s``, all DynamoDB requests fail for ``outage_s``."""
        cfg = self.config
        if cfg.outage_every_s <= 0 or cfg.outage_s <= 0:
            return
        next_at = time.monotonic() + cfg.outage_every_s / 2
        while not self._stop.is_set() and next_at + cfg.outage_s < deadline:
            if self._stop.wait(max(0.0, next_at - time.monotonic())):
                return
            self.faults.outage(cfg.outage_s)
            self.events.append(
                f"{time.time() - self.started:6.1f}s DynamoDB outage {cfg.outage_s} s"
            )
            next_at += cfg.outage_every_s

    def _retry(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run an admin action until it succeeds (faults may fail it; each is idempotent)."""
        set_trace(f"admin:{what}")
        try:
            for attempt in range(200):
                try:
                    result = fn()
                except Exception as exc:
                    self.events.append(
                        f"{what}: attempt {attempt + 1} failed ({type(exc).__name__})"
                    )
                    time.sleep(0.2)
                    continue
                if result is not None:
                    return result
                time.sleep(0.2)
            raise RuntimeError(f"{what} never succeeded")
        finally:
            set_trace(None)

    def _stop_key(self, what: str) -> str:
        if what == "revoke":
            from functions.revoke.handler import handle

            target = self.keys["doomed"]

            def revoke() -> dict[str, Any] | None:
                out = handle(
                    {"key_id": target.key_id, "reason": "soak: revoked mid-run", "actor": ACTOR}
                )
                return out if out.get("ok") else None

            revoked = self._retry("revoke", revoke)
            now = time.time()
            for info in self.keys.values():
                if info.key_id in revoked["revoked"]:
                    info.stopped_at = now
        elif what == "suspend":
            from functions.keys import KeyService

            target = self.keys["paused"]

            def suspend() -> bool:
                KeyService().suspend(
                    target.key_id,
                    reason="soak: suspended mid-run",
                    actor="detector:soak",
                    evidence={"soak": True},
                )
                return True  # False (already suspended by an earlier attempt) is fine too

            self._retry("suspend", suspend)
            target.stopped_at = time.time()
        else:  # a signed GitHub leak report naming the leaked key
            target = self.keys["leaked"]
            body = json.dumps(
                [
                    {
                        "token": target.secret,
                        "type": "tollgate_api_key",
                        "url": "https://gist.github.com/soak/1",
                        "source": "gist",
                    }
                ]
            ).encode()

            def report() -> bool | None:
                status, _, data, _ = self._http(
                    "POST",
                    "/webhooks/github/secret-scanning",
                    None,
                    body,
                    {
                        "Github-Public-Key-Identifier": GitHub.KEY_ID,
                        "Github-Public-Key-Signature": self.github.sign(body),
                        DRAW_HEADER: "admin:leak",
                    },
                )
                if status != 200:
                    return None
                labels = [a.get("label") for a in json.loads(data)]
                return True if labels == ["true_positive"] else None

            self._retry("leak", report)
            target.stopped_at = time.time()
        return target.label

    # -- one client ------------------------------------------------------------------------
    def _client(self, index: int, kind: str, deadline: float) -> None:
        rng = random.Random(self.config.seed * 1000 + index)
        labels = list(KEY_WEIGHTS)
        weights = [KEY_WEIGHTS[k] for k in labels]
        table = SDK_ACTIONS if kind == "sdk" else HTTP_ACTIONS
        actions, action_weights = list(table), list(table.values())
        sdk: dict[str, Any] = {}
        mine: list[Sent] = []
        n = 0
        while not self._stop.is_set() and (
            time.monotonic() < deadline or self._sent_count < self.config.min_requests
        ):
            n += 1
            draw = {DRAW_HEADER: f"c{index}.{n}"}  # its faults replay from the seed
            with self._lock:
                self._sent_count += 1
            label = rng.choices(labels, weights)[0]
            action = rng.choices(actions, action_weights)[0]
            info = self.keys[label]
            if kind == "sdk" and info.secret is None:
                label, info = "garbage", self.keys["garbage"]
            if action.startswith("webhook") or action == "unknown-route":
                label = "-"
            t0 = time.time()
            try:
                if kind == "sdk":
                    sent = self._sdk(sdk, info, action, rng, draw)
                else:
                    sent = self._plain(info, action, rng, draw)
            except Exception as exc:  # no HTTP answer (timeout, connection): recorded
                sent = Sent(kind, label, action, 0, error=f"{type(exc).__name__}: {exc}"[:300])
            sent.client, sent.key, sent.action, sent.t0, sent.t1 = (
                kind,
                label,
                action,
                t0,
                time.time(),
            )
            mine.append(sent)
        for client in sdk.values():
            with contextlib.suppress(Exception):
                client.close()
        with self._lock:
            self.sent.extend(mine)

    def _prompt(self, rng: random.Random, words: int) -> list[dict[str, str]]:
        return [{"role": "user", "content": " ".join(rng.choice(WORDS) for _ in range(words))}]

    def _sdk(
        self,
        clients: dict[str, Any],
        info: KeyInfo,
        action: str,
        rng: random.Random,
        draw: dict[str, str],
    ) -> Sent:
        import openai

        client: Any = clients.get(info.label)
        if client is None:
            client = clients[info.label] = openai.OpenAI(
                base_url=f"{self.api_url}/v1",
                api_key=info.secret or "x",
                max_retries=0,
                timeout=self.config.request_timeout_s,
            )
        raw: Any
        try:
            if action in ("chat", "chat-paid-model"):
                model = PAID_MODEL if action == "chat-paid-model" else ECHO
                raw = client.chat.completions.with_raw_response.create(
                    model=model,
                    messages=self._prompt(rng, rng.randint(1, 12)),
                    extra_headers=draw,
                    **({} if (cap := rng.choice([0, 8, 32])) == 0 else {"max_tokens": cap}),
                )
                reply = raw.parse()
                tokens = reply.usage.total_tokens if reply.usage else 0
                return Sent(
                    "sdk",
                    info.label,
                    action,
                    raw.status_code,
                    request_id=raw.headers.get("x-amzn-requestid", ""),
                    tokens=tokens,
                )
            if action == "chat-stream":
                stream = client.chat.completions.create(
                    model=ECHO,
                    messages=self._prompt(rng, rng.randint(1, 8)),
                    stream=True,
                    stream_options={"include_usage": True},
                    extra_headers=draw,
                )
                tokens = 0
                for chunk in stream:
                    if chunk.usage is not None:
                        tokens = chunk.usage.total_tokens
                return Sent(
                    "sdk",
                    info.label,
                    action,
                    stream.response.status_code,
                    request_id=stream.response.headers.get("x-amzn-requestid", ""),
                    tokens=tokens,
                )
            if action == "chat-stream-cut":
                # The client goes away after a few chunks: it never sees the usage.
                stream = client.chat.completions.create(
                    model=ECHO,
                    messages=self._prompt(rng, rng.randint(6, 14)),
                    stream=True,
                    stream_options={"include_usage": True},
                    extra_headers=draw,
                )
                keep = rng.randint(1, 3)
                for i, _chunk in enumerate(stream):
                    if i + 1 >= keep:
                        break
                stream.close()
                return Sent(
                    "sdk",
                    info.label,
                    action,
                    stream.response.status_code,
                    request_id=stream.response.headers.get("x-amzn-requestid", ""),
                    cut=True,
                )
            if action == "models":
                raw = client.models.with_raw_response.list(extra_headers=draw)
            elif action == "ft-list":
                raw = client.fine_tuning.jobs.with_raw_response.list(
                    limit=rng.randint(1, 5), extra_headers=draw
                )
            else:
                tenant = "soak-other" if action == "ft-get-other" else info.tenant_id
                job = rng.choice(self.jobs.get(tenant) or self.jobs["soak-other"])
                raw = client.fine_tuning.jobs.with_raw_response.retrieve(job, extra_headers=draw)
            raw.parse()
            return Sent(
                "sdk",
                info.label,
                action,
                raw.status_code,
                request_id=raw.headers.get("x-amzn-requestid", ""),
            )
        except openai.APIStatusError as exc:
            code = ""
            if isinstance(exc.body, dict):
                code = str(exc.body.get("code") or "")
            return Sent(
                "sdk",
                info.label,
                action,
                exc.status_code,
                code=code,
                request_id=exc.response.headers.get("x-amzn-requestid", ""),
            )

    def _http(
        self,
        method: str,
        path: str,
        info: KeyInfo | None,
        body: bytes | None,
        headers: dict[str, str] | None = None,
        *,
        x_api_key: bool = False,
    ) -> tuple[int, str, bytes, str]:
        """(status, request id, body, error code) of one plain HTTP request."""
        sent_headers = {"Content-Type": "application/json", "User-Agent": "tollgate-soak/1"}
        if info is not None and info.secret is not None:
            if x_api_key:
                sent_headers["x-api-key"] = info.secret
            else:
                sent_headers["Authorization"] = f"Bearer {info.secret}"
        sent_headers.update(headers or {})
        request = urllib.request.Request(  # noqa: S310 - loopback only
            self.api_url + path, data=body, method=method, headers=sent_headers
        )
        try:
            with urllib.request.urlopen(request, timeout=self.config.request_timeout_s) as resp:  # noqa: S310
                data = resp.read()
                return resp.status, resp.headers.get("x-amzn-RequestId", ""), data, ""
        except urllib.error.HTTPError as exc:
            data = exc.read()
            code, _ = _error_code(data)
            return exc.code, exc.headers.get("x-amzn-RequestId", ""), data, code

    def _plain(self, info: KeyInfo, action: str, rng: random.Random, draw: dict[str, str]) -> Sent:
        chat_path = "/v1/chat/completions"
        body: bytes | None = None
        headers: dict[str, str] = {}
        use: KeyInfo | None = info
        x_api_key = False
        if action.startswith("chat"):
            method, path = "POST", chat_path
            doc: Any = {"model": ECHO, "messages": self._prompt(rng, rng.randint(1, 10))}
            if action == "chat-max-tokens":
                doc["max_tokens"] = rng.choice([1, 4, 64])
            if action == "chat-bad-schema":
                doc = rng.choice(
                    [
                        {"model": ECHO},
                        {"model": ECHO, "messages": "hi"},
                        {"model": 7, "messages": []},
                        [1, 2],
                        {"model": ECHO, "messages": [{"role": "wizard"}]},
                        {
                            "model": ECHO,
                            "messages": [{"role": "user", "content": "x"}],
                            "max_tokens": -3,
                        },
                    ]
                )
            body = (
                b'{"model": "tollgate-echo", "messages": ['
                if action == "chat-bad-json"
                else json.dumps(doc).encode()
            )
            x_api_key = action == "chat-x-api-key"
        elif action == "models":
            method, path = "GET", "/v1/models"
        elif action.startswith("tool"):
            method = "POST"
            name, args = {
                "tool-calculator": (
                    "calculator",
                    {"expression": f"{rng.randint(1, 99)} * ({rng.randint(1, 9)} + 1)"},
                ),
                "tool-token-count": (
                    "token_count",
                    {"text": " ".join(rng.choice(WORDS) for _ in range(5))},
                ),
                "tool-utc-now": ("utc_now", {}),
                "tool-unknown": ("teleport", {}),
                "tool-bad-args": ("calculator", {"expression": "__import__('os')"}),
            }[action]
            path = f"/v1/tools/{name}/invoke"
            body = json.dumps({"arguments": args}).encode()
        elif action.startswith("ft-list"):
            method = "GET"
            path = "/v1/fine_tuning/jobs?limit=" + ("0" if action == "ft-list-bad-limit" else "3")
        elif action == "ft-get":
            method = "GET"
            jobs = self.jobs.get(info.tenant_id) or self.jobs["soak-other"]
            path = f"/v1/fine_tuning/jobs/{rng.choice(jobs)}"
        elif action.startswith("webhook"):
            method, path, use = "POST", "/webhooks/github/secret-scanning", None
            report = [
                {
                    "token": rng.choice(["ghp_" + uuid.uuid4().hex, "tg_live_notours"]),
                    "type": "tollgate_api_key",
                    "url": "https://gist.github.com/x/1",
                    "source": "gist",
                }
            ]
            body = json.dumps(report).encode()
            if action == "webhook-malformed":
                body = b'{"token": 1}'
            if action in ("webhook-false-positive", "webhook-malformed"):
                headers = {
                    "Github-Public-Key-Identifier": GitHub.KEY_ID,
                    "Github-Public-Key-Signature": self.github.sign(body),
                }
            elif action == "webhook-bad-signature":
                headers = {
                    "Github-Public-Key-Identifier": GitHub.KEY_ID,
                    "Github-Public-Key-Signature": self.github.sign(body + b" "),
                }
            elif action == "webhook-unknown-key":
                headers = {
                    "Github-Public-Key-Identifier": "not-githubs",
                    "Github-Public-Key-Signature": self.github.sign(body),
                }
        else:  # unknown-route
            method, path, use = "GET", "/v1/teleport", None
        headers = {**headers, **draw}
        status, rid, data, code = self._http(method, path, use, body, headers, x_api_key=x_api_key)
        tokens = 0
        if status == 200 and action.startswith("chat"):
            with contextlib.suppress(ValueError, KeyError, TypeError):
                tokens = int(json.loads(data)["usage"]["total_tokens"])
        return Sent("http", info.label, action, status, code=code, request_id=rid, tokens=tokens)

    # -- the end ---------------------------------------------------------------------------
    def drain(self) -> None:
        self.faults.off()
        t0 = time.monotonic()
        self.drained = bool(self.pollers.wait_idle(self.config.drain_timeout_s))
        self.drain_s = time.monotonic() - t0

    def run(self) -> list[Row]:
        from tollgate.local.soak.checks import Checker

        try:
            self.start()
            self.seed()
            self.drive()
            self.drain()
            return Checker(self).run()
        finally:
            self.stop()
