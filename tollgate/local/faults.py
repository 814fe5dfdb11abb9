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
    seed: int | None = None
    usage_table: str = "tollgate-usage"
    injected: list[Injected] = field(default_factory=list)
    seen: Counter[str] = field(default_factory=Counter)  # DynamoDB requests by operation
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _outage_until: float = 0.0
    _scripted: list[Scripted] = field(default_factory=list, repr=False)
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)  # fault draws, not secrets

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
    def draw_request(self, operation: str, table: str = "") -> str | None:
        """The fault for one DynamoDB request (None: let it through); counts it as seen."""
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
                    return scripted.kind
            if self._outage_until > time.monotonic():
                return ERROR
            plan = self.plan
            if not plan.any_dynamodb:
                return None
            x = self._random.random()
            if x < plan.throttle:
                return THROTTLE
            if x < plan.throttle + plan.error:
                return ERROR
            if x < plan.throttle + plan.error + plan.ambiguous:
                return AMBIGUOUS
            return None

    def draw_crash(self) -> str | None:
        with self._lock:
            plan = self.plan
            x = self._random.random()
            if x < plan.crash:
                return CRASH
            if x < plan.crash + plan.crash_after:
                return CRASH_AFTER
            return None

    def throttle_shape(self) -> tuple[int, str, str]:
        with self._lock:
            return _PROVISIONED if self._random.random() < 0.5 else _THROTTLING

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
        if not self.faults.active:
            self.faults.draw_request(operation)  # counted as seen; no fault to draw
            return self._app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
        environ["CONTENT_LENGTH"] = str(len(body))
        table, usage_id = _facts(body, self.faults.usage_table, operation)
        kind = self.faults.draw_request(operation, table)
        if kind is None:
            return self._app(environ, start_response)
        if kind == THROTTLE:
            status, type_, message = self.faults.throttle_shape()
        else:
            status, type_, message = _INTERNAL
        if kind == AMBIGUOUS:  # applied by moto, then answered as failed
            for _ in self._app(environ, lambda *a, **k: lambda data: None):
                pass
        self.faults.record(
            Injected(
                at=time.time(),
                kind=kind,
                operation=operation,
                table=table,
                trace=environ.get("HTTP_" + TRACE_HEADER.upper().replace("-", "_"), ""),
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


def trace_all_clients() -> None:
    """Make every botocore client of this process (boto3, pynamodb, the functions' own)
    send this thread's trace: one patch of botocore's HTTP session. For harnesses only."""
    global _patched
    if _patched:
        return
    from botocore.httpsession import URLLib3Session

    original = URLLib3Session.send

    def send(self: Any, request: Any) -> Any:
        value = current_trace()
        if value:
            request.headers[TRACE_HEADER] = value
        return original(self, request)

    URLLib3Session.send = send
    _patched = True


# -- stream handler crashes ---------------------------------------------------------------------
class InjectedCrash(RuntimeError):
    """A stream handler invocation that failed on purpose."""


Handler = Callable[[dict[str, Any], Any], Any]


class CrashingHandler:
    """A stream handler that fails a share of its invocations (see the module docstring)."""

    def __init__(self, handler: Handler, faults: Faults, name: str) -> None:
        self.handler = handler
        self.faults = faults
        self.name = name
        self.invocations = 0

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.invocations += 1
        kind = self.faults.draw_crash()
        records = len(event.get("Records") or [])
        trace = f"stream:{self.name}"
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
            return result
        finally:
            set_trace(previous)


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
