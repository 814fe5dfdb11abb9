"""Issue 13's streaming figures, through the real local stack (``python -m tollgate.local``
in a subprocess, what ``make local`` runs, with ``TOLLGATE_ECHO_CHUNK_DELAY_MS=50``) and the
real OpenAI SDK, on a 40-word reply from tollgate-echo:

* **time to first chunk** (the first chunk with text) of a streamed request, against 50 ms
  (the echo's wait before its first word) plus the *non-streamed overhead*: the wall time of
  the same request without ``stream`` (the echo waits only when streaming), measured in the
  same run, alternately with the streamed one. Target: at most 1.2 x.
* **spread of the chunks**: last text chunk's arrival minus the first's, against
  0.9 x 40 x 50 ms (chunks arrive as produced, not all at the end). Target: at least 1 x.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from typing import Any, Final

from bench.common import Section

DELAY_MS: Final = 50
WORDS: Final = 40
RUNS: Final = 8
REPLY: Final = " ".join(f"word{i}" for i in range(WORDS))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalStack:
    """``python -m tollgate.local`` on free ports, managed with the real CLI."""

    def __init__(self) -> None:
        api_port, aws_port = _free_port(), _free_port()
        self.env = {
            **os.environ,
            "TOLLGATE_PORT": str(api_port),
            "TOLLGATE_AWS_PORT": str(aws_port),
            "TOLLGATE_ECHO_CHUNK_DELAY_MS": str(DELAY_MS),
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("AWS_ENDPOINT_URL", None)
        self.url = f"http://127.0.0.1:{api_port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tollgate.local"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait(self, seconds: float = 90) -> None:
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the local stack exited")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the local stack did not become healthy")

    def cli(self, *args: str) -> Any:
        out = subprocess.run(
            [sys.executable, "-m", "tollgate", "--local", "--json", *args],
            env=self.env, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        return json.loads(out.stdout) if out.stdout.strip() else None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _streamed(client: Any, messages: list[dict[str, str]]) -> tuple[float, float, str]:
    """(time to first text chunk, last text chunk - first, text) in ms."""
    t0 = time.perf_counter()
    first = last = 0.0
    parts: list[str] = []
    stream = client.chat.completions.create(
        model="tollgate-echo", messages=messages, stream=True, max_tokens=200
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            now = time.perf_counter()
            first = first or now
            last = now
            parts.append(chunk.choices[0].delta.content)
    return (first - t0) * 1000, (last - first) * 1000, "".join(parts)


def _whole(client: Any, messages: list[dict[str, str]]) -> float:
    t0 = time.perf_counter()
    reply = client.chat.completions.create(model="tollgate-echo", messages=messages,
                                           max_tokens=200)  # fmt: skip
    assert reply.choices[0].message.content == REPLY
    return (time.perf_counter() - t0) * 1000


def run() -> Section:
    from openai import OpenAI

    sec = Section("streaming")
    stack = LocalStack()
    try:
        stack.wait()
        name = f"bench-{uuid.uuid4().hex[:8]}"
        stack.cli("plans", "create", name, "--models", "tollgate-echo")
        stack.cli("tenants", "create", name, "--plan", name)
        secret = stack.cli("keys", "create", "--tenant", name)["secret"]
        client = OpenAI(base_url=f"{stack.url}/v1", api_key=secret, max_retries=0, timeout=60)
        messages = [{"role": "user", "content": REPLY}]
        _whole(client, messages)  # warm the plan cache and the clients
        _streamed(client, messages)
        overhead, ttfc, spread = [], [], []
        for _ in range(RUNS):  # alternately: background load hits both alike
            overhead.append(_whole(client, messages))
            first, between, text = _streamed(client, messages)
            assert text == REPLY, text
            ttfc.append(first)
            spread.append(between)
    finally:
        stack.stop()
    base = statistics.median(overhead)
    first = statistics.median(ttfc)
    ratio = first / (DELAY_MS + base)
    sec.add("non-streamed overhead (same request, no stream)", round(base, 1), unit="ms",
            note=f"median of {RUNS}")  # fmt: skip
    sec.add(
        "time to first chunk (40-word stream, 50 ms per chunk)",
        round(first, 1),
        unit="ms",
        baseline=f"50 ms + overhead = {DELAY_MS + base:.1f} ms",
        note=f"median of {RUNS}; OpenAI SDK through python -m tollgate.local",
    )
    sec.add(
        "time to first chunk / (delay + non-streamed overhead)",
        round(ratio, 2),
        unit="x",
        target="<= 1.2",
        ok=ratio <= 1.2,
    )
    spread_ms = statistics.median(spread)
    needed = 0.9 * WORDS * DELAY_MS
    sec.add("spread of chunk arrivals (last - first)", round(spread_ms, 1), unit="ms",
            baseline=f"0.9 x 40 x 50 ms = {needed:.0f} ms", note=f"median of {RUNS}")  # fmt: skip
    sec.add(
        "chunk spread / (0.9 x 40 x 50 ms)",
        round(spread_ms / needed, 2),
        unit="x",
        target=">= 1",
        ok=spread_ms >= needed,
    )
    return sec
