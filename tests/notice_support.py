"""Helpers for the threshold notices' tests and bench (a plain module, no fixtures): a real
HTTP receiver on 127.0.0.1 whose answer can be switched (200, 500, hang, down), and the
verification snippet of docs/billing.md, extracted verbatim."""

from __future__ import annotations

import re
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent.parent / "docs" / "billing.md"


@dataclass(frozen=True)
class Received:
    body: bytes
    headers: dict[str, str]
    at: float


class Receiver:
    """A webhook receiver the tests run. ``mode``: ``ok`` (200), ``fail`` (500), ``hang``
    (reads the request, answers nothing for ``hang_s``). :meth:`down` closes the port, so a
    POST there is refused; ``received`` keeps every request, answered or not."""

    def __init__(self, mode: str = "ok", hang_s: float = 3.0) -> None:
        self.mode = mode
        self.hang_s = hang_s
        self.received: list[Received] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with outer._lock:
                    outer.received.append(Received(body, dict(self.headers.items()), time.time()))
                    mode = outer.mode
                if mode == "hang":
                    time.sleep(outer.hang_s)
                    return
                status = 200 if mode == "ok" else 500
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"no")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/hooks/tollgate"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (a receiver that is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks"


def verification_snippet() -> str:
    """The Python block under "Verifying a notice" in docs/billing.md, verbatim."""
    text = DOCS.read_text()
    section = text.split("### Verifying a notice", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "docs/billing.md: no python block under 'Verifying a notice'"
    return found.group(1)
