"""Fault injection for the local stack: DynamoDB answering errors, stream handlers crashing.

Two faults, each injected in one place:

* **DynamoDB errors** (:class:`FaultInjectingApp`): a WSGI middleware in front of moto's
  server answers a share of the requests whose ``X-Amz-Target`` is ``DynamoDB_20120810.*``
  the way DynamoDB does when it refuses a request: HTTP 400 with
  ``ProvisionedThroughputExceededException`` or ``ThrottlingException``, or HTTP 500
  ``InternalServerError`` (JSON body with ``__type`` and ``message``, ``x-amzn-RequestId``
  and ``x-amz-crc32`` headers). The request never reaches moto: its state is untouched,
  exactly as when DynamoDB refuses a request. botocore retries these (the functions use
  standard mode, 3 attempts), so a client sees an error only when every attempt drew a
  fault; :meth:`Faults.outage` makes every request fail for a while to get past retries.
  Optionally (``ambiguous``, off unless asked) a request is applied by moto and *then*
  answered 500: DynamoDB's "the write may or may not have happened".
* **Stream handler crashes** (:class:`CrashingHandler`): wraps a stream handler so that a
  share of its invocations raise, either before the handler runs (``crash``: nothing was
  done) or after it returned (``crash_after``: the work was done but the invocation
  failed, so Lambda -- and the local poller -- delivers the batch again). Apply it to the
  pollers' sources with :func:`crashing_sources`; ``tollgate.local.pollers`` takes any
  callable as a handler, so nothing there changes.

Control is at runtime through one :class:`Faults` object (thread-safe): the soak driver
flips it (:meth:`Faults.set`, :meth:`Faults.off`, :meth:`Faults.outage`). The local stack
reads ``TOLLGATE_FAULTS`` once at start (``throttle=0.05,error=0.02,crash=0.1``; see
:meth:`FaultPlan.parse`), so ``TOLLGATE_FAULTS=... make local`` runs a faulty stack by hand.

Every injected fault is recorded (:attr:`Faults.injected`) with the operation, the table,
the usage event's request id for a usage ``PutItem``, and the *trace*: the
``x-tollgate-trace`` header the caller put on the request (:func:`tag_client` adds it to a
botocore client from :func:`set_trace`), which the soak sets to the API Gateway request id
so that every 5xx can be matched with the faults behind it.

**Draws replay from the seed.** Every draw is a function of (:attr:`Faults.seed`, the
caller's *draw key*, the operation, the table, how many such draws that key made before),
never of the order in which threads happened to reach moto: the n-th ``UpdateItem`` on the
tenants table made for a given draw key meets the same fault in every run with the same
seed. A draw key is the trace, or what :meth:`Faults.alias` maps it to (the soak names each
client request ``c<client>.<n>``, so a request's faults replay although its API Gateway
request id is new each run); a stream handler's is ``crash:<source>`` for its crashes.
Outages are the exception: they are scheduled by time.
"""

from __future__ import annotations

import io
import json
import os
import random
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Final

TARGET_PREFIX: Final = "DynamoDB_20120810."
TRACE_HEADER: Final = "x-tollgate-trace"
ENV: Final = "TOLLGATE_FAULTS"

THROTTLE: Final = "throttle"
ERROR: Final = "error"
AMBIGUOUS: Final = "ambiguous"
CRASH: Final = "crash"
CRASH_AFTER: Final = "crash_after"
LOST: Final = "lost"  # not injected: a client timed out on a request moto may have applied

# What DynamoDB answers (its JSON protocol): status, __type, message.
_PROVISIONED: Final = (
    400,
    "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
    "The level of configured provisioned throughput for the table was exceeded. "
    "Consider increasing your provisioning level with the UpdateTable API.",
)
_THROTTLING: Final = (
    400,
    "com.amazon.coral.availability#ThrottlingException",
    "Rate of requests exceeds the allowed throughput.",
)
_INTERNAL: Final = (
    500,
    "com.amazon.coral.service#InternalServerError",
    "Internal server error",
)
_REASONS: Final = {200: "OK", 400: "Bad Request", 500: "Internal Server Error"}


class FaultSpecError(ValueError):
    """A fault specification (``TOLLGATE_FAULTS``) that cannot be read."""


@dataclass(frozen=True)
class FaultPlan:
    """Shares (0..1) of the requests or invocations that fail, by kind.

    ``throttle`` and ``error`` (and ``ambiguous``) apply to DynamoDB requests, drawn
    independently per request; ``crash`` and ``crash_after`` to stream handler invocations.
    """

    throttle: float = 0.0
    error: float = 0.0
    ambiguous: float = 0.0
    crash: float = 0.0
    crash_after: float = 0.0

    def __post_init__(self) -> None:
        for name in (THROTTLE, ERROR, AMBIGUOUS, CRASH, CRASH_AFTER):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise FaultSpecError(f"{name} must be a number from 0 to 1")
            if not 0.0 <= float(value) <= 1.0:
                raise FaultSpecError(f"{name} must be from 0 to 1, got {value}")
        if self.throttle + self.error + self.ambiguous > 1.0:
            raise FaultSpecError("throttle + error + ambiguous must not exceed 1")
        if self.crash + self.crash_after > 1.0:
            raise FaultSpecError("crash + crash_after must not exceed 1")

    @property
    def any_dynamodb(self) -> bool:
        return self.throttle > 0 or self.error > 0 or self.ambiguous > 0

    @classmethod
    def parse(cls, text: str) -> FaultPlan:
        """``"throttle=0.05,error=0.02,crash=0.1"`` (empty: no faults). Raises FaultSpecError."""
        values: dict[str, float] = {}
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            name, sep, raw = part.partition("=")
            name = name.strip()
            if not sep or name not in (THROTTLE, ERROR, AMBIGUOUS, CRASH, CRASH_AFTER):
                raise FaultSpecError(
                    f"unknown fault {part!r}; use throttle=, error=, ambiguous=, crash=, "
                    "crash_after= with a share from 0 to 1"
                )
            if name in values:
                raise FaultSpecError(f"fault {name!r} given twice")
            try:
                values[name] = float(raw)
            except ValueError:
                raise FaultSpecError(f"{name} must be a number from 0 to 1, got {raw!r}") from None
        return cls(**values)


@dataclass(frozen=True)
class Injected:
    """One injected fault."""

    at: float  # epoch seconds
    kind: str  # throttle | error | ambiguous | crash | crash_after
    operation: str  # DynamoDB operation (e.g. "PutItem"), or the stream source's name
    table: str = ""
    trace: str = ""  # the caller's x-tollgate-trace header ("" if none)
    usage_request_id: str = ""  # for a PutItem on the usage table: the event's request id
    code: str = ""  # the error code answered


@dataclass
class Scripted:
    """A fault for the next matching DynamoDB request(s), whatever the shares say."""

    kind: str
    operation: str | None = None  # e.g. "PutItem" (None: any)
    table: str | None = None  # e.g. "tollgate-usage" (None: any)
    times: int = 1
    after: int = 0  # let this many matching requests through first

    def matches(self, operation: str, table: str) -> bool:
        return (self.operation in (None, operation)) and (self.table in (None, table))


@dataclass
class Faults:
    """The runtime switch and the record of what was injected (thread-safe).

    ``usage_table``: the table whose ``PutItem`` request ids are recorded (usage events).
    """

    plan: FaultPlan = field(default_factory=FaultPlan)
    seed: int | None = None  # None: a random one, kept here (print it to replay a run)
    usage_table: str = "tollgate-usage"
    injected: list[Injected] = field(default_factory=list)
    seen: Counter[str] = field(default_factory=Counter)  # DynamoDB requests by operation
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _outage_until: float = 0.0
    _scripted: list[Scripted] = field(default_factory=list, repr=False)
    _draws: Counter[str] = field(default_factory=Counter, repr=False)  # draws made per key
    _aliases: dict[str, str] = field(default_factory=dict, repr=False)  # trace -> draw key
    _spared: set[str] = field(default_factory=set, repr=False)  # draw keys with no faults

    def __post_init__(self) -> None:
        if self.seed is None:
            self.seed = new_seed()

    def _rng(self, key: str) -> random.Random:
        """The generator of the next draw for ``key`` (call with the lock held): seeded
        from the seed, the key and the number of draws the key made before."""
        n = self._draws[key]
        self._draws[key] = n + 1
        return random.Random(f"{self.seed}/{key}/{n}")  # fault draws, not secrets

    def _key(self, trace: str) -> str:
        return self._aliases.get(trace, trace) or "untraced"

    # -- control --------------------------------------------------------------------------
    def set(self, plan: FaultPlan | None = None, **shares: float) -> FaultPlan:
        """Replace the plan (or change some shares of it); returns the new plan."""
        with self._lock:
            self.plan = replace(plan or self.plan, **shares) if shares else (plan or self.plan)
            return self.plan

    def off(self) -> None:
        """No more faults of any kind (an outage in progress and scripted faults end too)."""
        with self._lock:
            self.plan = FaultPlan()
            self._outage_until = 0.0
            self._scripted.clear()

    def outage(self, seconds: float) -> None:
        """Every DynamoDB request fails with a 500 for ``seconds`` (past botocore's retries)."""
        with self._lock:
            self._outage_until = time.monotonic() + seconds

    def next_request(
        self,
        kind: str,
        *,
        operation: str | None = None,
        table: str | None = None,
        times: int = 1,
        after: int = 0,
    ) -> None:
        """Fail ``times`` DynamoDB requests of ``operation`` on ``table`` with ``kind``
        (throttle, error or ambiguous), after letting ``after`` of them through:
        deterministic faults for tests."""
        if kind not in (THROTTLE, ERROR, AMBIGUOUS):
            raise FaultSpecError(f"a request fault is throttle, error or ambiguous, not {kind!r}")
        with self._lock:
            self._scripted.append(Scripted(kind, operation, table, times, after))

    def alias(self, trace: str, key: str | None) -> None:
        """Draw the faults of requests traced ``trace`` as ``key`` (None: forget it)."""
        with self._lock:
            if key:
                self._aliases[trace] = key
            else:
                self._aliases.pop(trace, None)

    def spare(self, key: str, spared: bool = True) -> None:
        """Draw no random fault (nor crash) for ``key`` while spared; outages and scripted
        faults still apply."""
        with self._lock:
            if spared:
                self._spared.add(key)
            else:
                self._spared.discard(key)

    @property
    def active(self) -> bool:
        return (
            self.plan.any_dynamodb or self._outage_until > time.monotonic() or bool(self._scripted)
        )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Faults | None:
        """The faults ``TOLLGATE_FAULTS`` asks for, or None when it is unset or empty."""
        text = (os.environ if environ is None else environ).get(ENV, "").strip()
        if not text:
            return None
        return cls(FaultPlan.parse(text))

    # -- drawing --------------------------------------------------------------------------
    def draw_request(
        self, operation: str, table: str = "", trace: str = ""
    ) -> tuple[str, tuple[int, str, str]] | None:
        """The fault for one DynamoDB request made for ``trace`` -- its kind and the answer
        (status, type, message) -- or None to let it through; counts it as seen."""
        with self._lock:
            self.seen[operation] += 1
            for scripted in self._scripted:
                if scripted.matches(operation, table):
                    if scripted.after > 0:
                        scripted.after -= 1
                        break
                    scripted.times -= 1
                    if scripted.times <= 0:
                        self._scripted.remove(scripted)
                    return scripted.kind, self._answer(scripted.kind, self._key(trace))
            if self._outage_until > time.monotonic():
                return ERROR, _INTERNAL
            plan = self.plan
            key = self._key(trace)
            if not plan.any_dynamodb or key in self._spared:
                return None
            rng = self._rng(f"{key}/{operation}/{table}")
            x = rng.random()
            if x < plan.throttle:
                kind = THROTTLE
            elif x < plan.throttle + plan.error:
                kind = ERROR
            elif x < plan.throttle + plan.error + plan.ambiguous:
                kind = AMBIGUOUS
            else:
                return None
            if kind != THROTTLE:
                return kind, _INTERNAL
            return kind, _PROVISIONED if rng.random() < 0.5 else _THROTTLING

    def _answer(self, kind: str, key: str) -> tuple[int, str, str]:
        if kind != THROTTLE:
            return _INTERNAL
        return _PROVISIONED if self._rng(f"{key}/shape").random() < 0.5 else _THROTTLING

    def draw_crash(self, name: str = "") -> str | None:
        """The fault for one invocation of the stream handler ``name`` (None: none)."""
        with self._lock:
            plan = self.plan
            key = f"crash:{name}"
            if not (plan.crash or plan.crash_after) or key in self._spared:
                return None
            x = self._rng(key).random()
            if x < plan.crash:
                return CRASH
            if x < plan.crash + plan.crash_after:
                return CRASH_AFTER
            return None

    def lost(self, request: Any, error: BaseException) -> None:
        """Record a DynamoDB request whose answer never came (botocore timed out or the
        connection closed: a busy machine, not a fault drawn). Like ``ambiguous``, moto may
        have applied it, and botocore retries it: the soak's checks bound its effects."""
        headers = getattr(request, "headers", {}) or {}
        target = str(headers.get("X-Amz-Target", "") or "")
        if isinstance(target, bytes):  # pragma: no cover - botocore keeps str here
            target = target.decode()
        if not target.startswith(TARGET_PREFIX):
            return
        operation = target[len(TARGET_PREFIX) :]
        body = getattr(request, "body", b"") or b""
        table, usage_id = _facts(body if isinstance(body, bytes) else str(body).encode(),
                                 self.usage_table, operation)  # fmt: skip
        trace = headers.get(TRACE_HEADER, "")
        self.record(
            Injected(
                at=time.time(),
                kind=LOST,
                operation=operation,
                table=table,
                trace=trace.decode() if isinstance(trace, bytes) else str(trace),
                usage_request_id=usage_id,
                code=type(error).__name__,
            )
        )

    def record(self, fault: Injected) -> None:
        with self._lock:
            self.injected.append(fault)

    # -- reading --------------------------------------------------------------------------
    def snapshot(self) -> list[Injected]:
        with self._lock:
            return list(self.injected)

    def counts(self) -> Counter[str]:
        """Injected faults by kind."""
        return Counter(f.kind for f in self.snapshot())

    def by_trace(self) -> dict[str, list[Injected]]:
        out: dict[str, list[Injected]] = {}
        for f in self.snapshot():
            if f.trace:
                out.setdefault(f.trace, []).append(f)
        return out


def new_seed() -> int:
    """A fresh seed for a run (print it: ``--seed`` replays the run's fault draws)."""
    return random.SystemRandom().randrange(1, 2**31)


def error_response(
    status: int, type_: str, message: str
) -> tuple[str, list[tuple[str, str]], bytes]:
    """Status line, headers and body of a DynamoDB error answer."""
    body = json.dumps({"__type": type_, "message": message}).encode()
    headers = [
        ("Content-Type", "application/x-amz-json-1.0"),
        ("Content-Length", str(len(body))),
        ("x-amzn-RequestId", (uuid.uuid4().hex + uuid.uuid4().hex).upper()[:52]),
        ("x-amz-crc32", str(zlib.crc32(body) & 0xFFFFFFFF)),
    ]
    return f"{status} {_REASONS.get(status, 'Error')}", headers, body


def _facts(body: bytes, usage_table: str, operation: str) -> tuple[str, str]:
    """(table name, usage request id) from a DynamoDB JSON request body, best effort."""
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        return "", ""
    if not isinstance(doc, dict):
        return "", ""
    table = doc.get("TableName")
    table = table if isinstance(table, str) else ""
    request_id = ""
    if operation == "PutItem" and table == usage_table:
        item = doc.get("Item")
        rid = item.get("request_id") if isinstance(item, dict) else None
        if isinstance(rid, dict) and isinstance(rid.get("S"), str):
            request_id = rid["S"]
    return table, request_id


class FaultInjectingApp:
    """WSGI middleware in front of moto: answers a share of DynamoDB requests with errors
    (see the module docstring). Requests of other services pass untouched."""

    def __init__(self, app: Callable[..., Iterable[bytes]], faults: Faults) -> None:
        self._app = app
        self.faults = faults

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith(TARGET_PREFIX):
            return self._app(environ, start_response)
        operation = target[len(TARGET_PREFIX) :]
        trace = environ.get("HTTP_" + TRACE_HEADER.upper().replace("-", "_"), "")
        if not self.faults.active:
            self.faults.draw_request(operation)  # counted as seen; no fault to draw
            return self._app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
        environ["CONTENT_LENGTH"] = str(len(body))
        table, usage_id = _facts(body, self.faults.usage_table, operation)
        drawn = self.faults.draw_request(operation, table, trace)
        if drawn is None:
            return self._app(environ, start_response)
        kind, (status, type_, message) = drawn
        if kind == AMBIGUOUS:  # applied by moto, then answered as failed
            for _ in self._app(environ, lambda *a, **k: lambda data: None):
                pass
        self.faults.record(
            Injected(
                at=time.time(),
                kind=kind,
                operation=operation,
                table=table,
                trace=trace,
                usage_request_id=usage_id,
                code=type_.rsplit("#", 1)[-1],
            )
        )
        line, headers, data = error_response(status, type_, message)
        start_response(line, headers)
        return [data]


# -- traces: which request a DynamoDB call was made for ---------------------------------------
_trace = threading.local()


def set_trace(value: str | None) -> None:
    """Tag this thread's DynamoDB calls (made through a :func:`tag_client` client)."""
    _trace.value = value


def current_trace() -> str | None:
    value: str | None = getattr(_trace, "value", None)
    return value


def tag_client(client: Any) -> None:
    """Make ``client`` (botocore) send this thread's trace as ``x-tollgate-trace``."""

    def add(request: Any, **_: Any) -> None:
        value = current_trace()
        if value:
            request.headers[TRACE_HEADER] = value

    client.meta.events.register_first("before-send.dynamodb", add)


_patched = False
_on_lost: Callable[[Any, BaseException], None] | None = None


def trace_all_clients(on_lost: Callable[[Any, BaseException], None] | None = None) -> None:
    """Make every botocore client of this process (boto3, pynamodb, the functions' own)
    send this thread's trace: one patch of botocore's HTTP session. ``on_lost(request,
    error)`` hears of every request whose answer was lost (read timeout, connection closed:
    sent, maybe applied, retried by botocore), e.g. :meth:`Faults.lost`. For harnesses only."""
    global _patched, _on_lost
    _on_lost = on_lost
    if _patched:
        return
    from botocore.exceptions import ConnectionClosedError, ReadTimeoutError
    from botocore.httpsession import URLLib3Session

    original = URLLib3Session.send

    def send(self: Any, request: Any) -> Any:
        value = current_trace()
        if value:
            request.headers[TRACE_HEADER] = value
        try:
            return original(self, request)
        except (ReadTimeoutError, ConnectionClosedError) as exc:
            if _on_lost is not None:
                _on_lost(request, exc)
            raise

    URLLib3Session.send = send
    _patched = True


# -- stream handler crashes ---------------------------------------------------------------------
class InjectedCrash(RuntimeError):
    """A stream handler invocation that failed on purpose."""


Handler = Callable[[dict[str, Any], Any], Any]


class CrashingHandler:
    """A stream handler that fails a share of its invocations (see the module docstring).

    Never more than ``max_in_a_row`` failed invocations in a row are caused on purpose:
    after that many (injected crashes, or the handler failing on injected DynamoDB faults),
    the next invocation runs spared -- no crash, no random DynamoDB fault for its trace --
    until one succeeds. So a dead letter (the mapping gives up after ``max_retries``, 5 or
    more, failed deliveries) can only come from a handler that fails on its own: a bug, never
    the luck of the draw. Outages still apply; they last less than the pollers' backoff.
    """

    def __init__(
        self, handler: Handler, faults: Faults, name: str, *, max_in_a_row: int = 2
    ) -> None:
        self.handler = handler
        self.faults = faults
        self.name = name
        self.max_in_a_row = max_in_a_row
        self.invocations = 0
        self.failed_in_a_row = 0

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.invocations += 1
        trace = f"stream:{self.name}"
        spared = self.failed_in_a_row >= self.max_in_a_row
        self.faults.spare(f"crash:{self.name}", spared)
        self.faults.spare(trace, spared)
        kind = self.faults.draw_crash(self.name)
        records = len(event.get("Records") or [])
        previous = current_trace()
        set_trace(trace)
        try:
            if kind == CRASH:
                self.faults.record(Injected(time.time(), CRASH, self.name, trace=trace))
                raise InjectedCrash(f"injected crash before the batch ({records} records)")
            result = self.handler(event, context)
            if kind == CRASH_AFTER:
                self.faults.record(Injected(time.time(), CRASH_AFTER, self.name, trace=trace))
                raise InjectedCrash(f"injected crash after the batch ({records} records)")
        except BaseException:
            self.failed_in_a_row += 1
            raise
        finally:
            set_trace(previous)
        if _partly_failed(result):
            self.failed_in_a_row += 1
        else:
            self.failed_in_a_row = 0
        return result


def _partly_failed(result: Any) -> bool:
    """A stream handler's answer that asks for records again (``batchItemFailures``)."""
    return isinstance(result, dict) and bool(result.get("batchItemFailures"))


def crashing_sources(sources: Iterable[Any], faults: Faults) -> list[Any]:
    """The pollers' sources (``tollgate.local.pollers.StreamSource``) with crashing handlers."""
    out = []
    for source in sources:
        out.append(replace(source, handler=CrashingHandler(source.load(), faults, source.name)))
    return out


def parse_env_or_exit(environ: dict[str, str] | None = None) -> Faults | None:
    """:meth:`Faults.from_env` for an entry point: a bad value is one line and exit 2."""
    try:
        return Faults.from_env(environ)
    except FaultSpecError as exc:
        import sys

        print(f"tollgate local: {ENV}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
