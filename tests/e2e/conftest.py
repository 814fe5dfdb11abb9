"""The e2e tests drive the real local stack (``python -m tollgate.local``, what ``make local``
runs) over HTTP, and manage it with the real CLI (``tollgate --local``)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    url: str
    env: dict[str, str]
    output: list[str]

    def cli(self, *args: str, check: bool = True) -> Any:
        proc = subprocess.run(
            [sys.executable, "-m", "tollgate", "--local", "--json", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"tollgate {' '.join(args)}: {proc.returncode} {proc.stderr}")
        return json.loads(proc.stdout) if proc.stdout.strip() else None


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    api_port, aws_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "TOLLGATE_PORT": str(api_port),
        "TOLLGATE_AWS_PORT": str(aws_port),
        "TOLLGATE_OIDC_PORT": str(
            _free_port()
        ),  # the local OIDC issuer (tests/e2e/test_trust_local.py)
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("AWS_ENDPOINT_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tollgate.local"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{api_port}"
    output: list[str] = []
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as resp:
                if resp.status == 200:
                    break
        except OSError:
            if proc.poll() is not None:
                out = proc.stdout.read() if proc.stdout else ""
                raise RuntimeError(f"local stack exited: {out}") from None
            time.sleep(0.2)
    else:
        proc.kill()
        raise RuntimeError("local stack did not become healthy in 60 s")
    try:
        yield Stack(url, env, output)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
