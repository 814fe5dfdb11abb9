"""The local twin of the stack's access-log subscription: refusals reach the spike detector.

In AWS, API Gateway's JSON access log is subscribed to the detector's refusals handler
(``infra/detect.py``); locally the gateway hands each access-log line to :class:`RefusalFeed`,
which batches the refused ones (401 and 403 at the gate) on a thread of its own and passes them
to the same detector code, so credential stuffing is caught in ``make local`` too. A full
queue drops lines (and counts them) rather than slowing requests down.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

from functions.common.observability import logger

BATCH = 100
WAIT_S = 0.5


class RefusalFeed:
    def __init__(self, maxsize: int = 10_000) -> None:
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="refusal-feed", daemon=True)
        self.dropped = 0
        self.delivered = 0

    def start(self) -> RefusalFeed:
        self._thread.start()
        return self

    def put(self, line: dict[str, Any]) -> None:
        if line.get("status") not in ("401", "403"):
            return
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        from functions.detector.handler import detector
        from functions.detector.records import access_log_refusal

        while not self._stop.is_set():
            lines: list[dict[str, Any]] = []
            try:
                lines.append(self._queue.get(timeout=WAIT_S))
                while len(lines) < BATCH:
                    lines.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            now_ms = int(time.time() * 1000)
            refusals = [r for r in (access_log_refusal(x, now_ms) for x in lines) if r]
            if not refusals:
                continue
            try:
                detector().process_refusals(refusals)
                self.delivered += len(refusals)
            except Exception as exc:  # keep feeding: a failed batch is logged, not fatal
                logger.error("refusals not processed", extra={"error": type(exc).__name__})

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
