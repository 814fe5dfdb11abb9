"""moto's server as the embedded AWS endpoint, with DynamoDB's per-item atomicity restored.

DynamoDB guarantees that a conditional write is atomic per item; moto 5.2.5 does not under
concurrent requests (measured here: 32 threads overshot a ``used < :limit`` counter, moto
lost writes it had confirmed, and raised "dictionary changed size during iteration"). Locking
only the backend's write methods is not enough, because a response can serialise an item
while another request changes it. So every request is dispatched under one lock, and its
whole response body is produced inside it. This is the one place that does it; the local
stack, the integration tests and the benchmarks all run moto through :func:`start`.

Inside the lock sits :class:`~tollgate.local.faults.FaultInjectingApp`: it lets every request
through unless faults are switched on (``MotoServer.faults``, or ``TOLLGATE_FAULTS`` at
:func:`start`), then answers a share of DynamoDB requests with DynamoDB's errors.

Around it, inside the lock too, sits the write meter (:mod:`tollgate.local.meter`), off unless a
``with server.metered() as m:`` block is open: then every DynamoDB request is counted and every
item write priced in DynamoDB's write units, on the table and on each index.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from tollgate.local.faults import FaultInjectingApp, Faults, parse_env_or_exit
from tollgate.local.meter import Metered, WriteMeter

DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto's dummy credentials
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class SerializedApp:
    """WSGI middleware: one request at a time through moto (see module docstring).

    The write meter, when one is given and a block is open, sees each request inside the lock;
    off, it costs one attribute test per request.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], *, metered: bool = True) -> None:
        self._app = app
        self.lock = threading.Lock()
        self.meter: WriteMeter | None = WriteMeter(self.lock) if metered else None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self.lock:
            meter = self.meter
            if meter is not None and meter.on:
                return meter.observe(self._app, environ, start_response)
            return [b"".join(self._app(environ, start_response))]


class QuietHandler(WSGIRequestHandler):
    """No access log line per AWS call (the local stack makes thousands)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class MotoServer:
    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, faults: Faults | None = None
    ) -> None:
        from moto.server import DomainDispatcherApplication, create_backend_app

        self.faults = faults if faults is not None else Faults()  # off unless switched on
        moto = DomainDispatcherApplication(create_backend_app)
        app = SerializedApp(FaultInjectingApp(moto, self.faults))
        # Held by every request; whoever edits moto's state directly (the pollers trimming
        # read stream records) must hold it too.
        self.lock = app.lock
        assert app.meter is not None
        self.meter: WriteMeter = app.meter
        self._server: BaseWSGIServer = make_server(
            host, port, app, threaded=True, request_handler=QuietHandler
        )
        self.host = host
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> MotoServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @contextmanager
    def metered(self, tables: Iterable[str] | None = None) -> Iterator[Metered]:
        """Measure a block: ``with server.metered() as m: ...`` then ``m.write_units_total``,
        ``m.by_table``, ``m.by_index``, ``m.round_trips``, ``m.writes`` (see
        :mod:`tollgate.local.meter`). ``tables``: count only requests on these tables.
        Blocks may nest or overlap (from several threads); each sees every request served
        while it is open."""
        with self.meter.recording(tables) as measured:
            yield measured

    def reset(self) -> None:
        """Forget every resource (moto's reset API)."""
        import urllib.request

        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")  # noqa: S310
        urllib.request.urlopen(req, timeout=10).close()  # noqa: S310


def client_environment(endpoint: str) -> dict[str, str]:
    """The environment that points boto3, botocore and pynamodb at ``endpoint``."""
    return {**DUMMY_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}


def point_clients_at(endpoint: str) -> None:
    """Point this process's AWS clients at ``endpoint`` (before any client is built)."""
    os.environ.update(client_environment(endpoint))


def start(host: str = "127.0.0.1", port: int = 0, faults: Faults | None = None) -> MotoServer:
    """Start moto's server; ``faults`` (default: what ``TOLLGATE_FAULTS`` asks for, if set)."""
    if faults is None:
        faults = parse_env_or_exit()
    return MotoServer(host, port, faults).start()


@contextmanager
def running(
    host: str = "127.0.0.1", port: int = 0, faults: Faults | None = None
) -> Iterator[MotoServer]:
    server = start(host, port, faults)
    try:
        yield server
    finally:
        server.stop()
