"""A local Stripe for the billing export: a real HTTP server on 127.0.0.1 that implements
what the official ``stripe`` SDK calls for meter events, ``POST /v1/billing/meter_events``
(form-encoded, ``Authorization: Bearer sk_...``), and enforces what matters to exactly-once
export: **an identifier it already holds is refused** (HTTP 400 ``invalid_request_error``,
"An event already exists with identifier ...", ``stripe-should-retry: false``; real Stripe
remembers identifiers for at least 24 hours, this fake forever).

Point the SDK at it with ``StripeClient(key, base_addresses={"api": fake.url})`` (or
``tollgate billing export --to stripe --stripe-api-base URL``). Faults for the tests and
the bench (:meth:`StripeFake.fail`): answer 500 *before* storing (nothing happened) or
*after* storing (the event is kept but the client sees an error: Stripe's "maybe").

What this fake does not model (docs/billing.md): meters and customers (any ``cus_...`` is
accepted; :attr:`known_customers` restricts them), the 35-day timestamp window, asynchronous
processing and error reports, idempotency-key replay, rate limits.

Run alone: ``python -m tollgate.local.stripe_fake [--port N]`` (prints its URL).
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
import urllib.parse
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

PATH: Final = "/v1/billing/meter_events"
_KEY: Final = re.compile(r"(sk|rk)_(test|live)_[A-Za-z0-9]{4,}")
_CUSTOMER: Final = re.compile(r"cus_[A-Za-z0-9]{1,250}")


@dataclass(frozen=True)
class MeterEvent:
    identifier: str
    event_name: str
    customer: str
    value: int
    timestamp: int


@dataclass
class _Faults:
    before: int = 0  # next N creates answer 500 without storing
    after: int = 0  # next N creates are stored, then answered 500


@dataclass
class StripeFake:
    """The server's state; :meth:`start` serves it until :meth:`stop`."""

    host: str = "127.0.0.1"
    port: int = 0
    known_customers: set[str] | None = None  # None: any cus_... exists
    api_keys: set[str] | None = None  # None: any well-formed sk_/rk_ key is valid
    events: dict[str, MeterEvent] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)  # by outcome
    _faults: _Faults = field(default_factory=_Faults)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- control --------------------------------------------------------------------------

    def start(self) -> StripeFake:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet: never log bodies or keys
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace")
                status, doc, headers = fake.handle(
                    self.path, self.headers.get("Authorization", ""), body
                )
                self._answer(status, doc, headers)

            def do_GET(self) -> None:
                self._answer(404, _error("invalid_request_error", "not implemented", None), {})

            def _answer(self, status: int, doc: dict[str, Any], headers: dict[str, str]) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", f"req_fake{time.monotonic_ns()}")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> StripeFake:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def fail(self, before: int = 0, after: int = 0) -> None:
        """The next ``before`` creates fail unstored, then ``after`` more fail stored."""
        with self._lock:
            self._faults.before += before
            self._faults.after += after

    def reset(self) -> None:
        with self._lock:
            self.events.clear()
            self.requests.clear()
            self._faults = _Faults()

    def totals(self) -> dict[tuple[str, str], int]:
        """Sum of values per (customer, event_name): what Stripe would bill."""
        out: dict[tuple[str, str], int] = defaultdict(int)
        with self._lock:
            for e in self.events.values():
                out[(e.customer, e.event_name)] += e.value
        return dict(out)

    # -- the API --------------------------------------------------------------------------

    def handle(self, path: str, auth: str, body: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        no_retry = {"Stripe-Should-Retry": "false"}
        if urllib.parse.urlsplit(path).path != PATH:
            return 404, _error("invalid_request_error", f"Unrecognized request URL ({path})"), {}
        key = auth[7:].strip() if auth.startswith("Bearer ") else ""
        if not _KEY.fullmatch(key) or (self.api_keys is not None and key not in self.api_keys):
            return 401, _error("invalid_request_error", "Invalid API Key provided", None), {}
        form = urllib.parse.parse_qs(body, keep_blank_values=True)

        def one(name: str) -> str | None:
            values = form.get(name)
            return values[-1] if values else None

        event_name, identifier = one("event_name"), one("identifier")
        customer, raw_value = one("payload[stripe_customer_id]"), one("payload[value]")
        raw_ts = one("timestamp")
        for name, value in (("event_name", event_name), ("payload[stripe_customer_id]", customer),
                            ("payload[value]", raw_value)):  # fmt: skip
            if not value:
                return 400, _error("invalid_request_error", f"Missing required param: {name}."), {}
        assert event_name is not None and customer is not None and raw_value is not None
        if identifier is None:
            identifier = f"fake_{time.monotonic_ns()}"
        if len(identifier) > 100 or len(event_name) > 100:
            return (
                400,
                _error("invalid_request_error", "identifier too long", "parameter_invalid"),
                {},
            )
        if not re.fullmatch(r"-?[0-9]+", raw_value):
            return 400, _error("invalid_request_error", "value must be a whole number", None), {}
        if not _CUSTOMER.fullmatch(customer) or (
            self.known_customers is not None and customer not in self.known_customers
        ):
            return (
                400,
                _error("invalid_request_error", "No such customer", "resource_missing"),
                no_retry,
            )
        try:
            timestamp = int(raw_ts) if raw_ts else int(time.time())
        except ValueError:
            return 400, _error("invalid_request_error", "Invalid timestamp", None), {}
        event = MeterEvent(identifier, event_name, customer, int(raw_value), timestamp)
        with self._lock:
            if self._faults.before:
                self._faults.before -= 1
                self.requests["failed_unstored"] += 1
                return 500, _error("api_error", "An unknown error occurred", None), {}
            if identifier in self.events:
                self.requests["duplicate"] += 1
                return (
                    400,
                    _error(
                        "invalid_request_error",
                        f"An event already exists with identifier {identifier}.",
                        "duplicate_meter_event",
                    ),
                    no_retry,
                )
            self.events[identifier] = event
            if self._faults.after:
                self._faults.after -= 1
                self.requests["failed_stored"] += 1
                return 500, _error("api_error", "An unknown error occurred", None), {}
            self.requests["created"] += 1
        return 200, _object(event), {}


def _error(kind: str, message: str, code: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code:
        error["code"] = code
    return {"error": error}


def _object(e: MeterEvent) -> dict[str, Any]:
    return {
        "object": "billing.meter_event",
        "created": int(time.time()),
        "event_name": e.event_name,
        "identifier": e.identifier,
        "livemode": False,
        "payload": {"stripe_customer_id": e.customer, "value": str(e.value)},
        "timestamp": e.timestamp,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A local Stripe (meter events only).")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    fake = StripeFake(port=args.port).start()
    print(fake.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
