"""Finding 6 of issue 11: ``python -m tollgate.local --help`` printed nothing and started a
second stack; it prints usage (naming the port variables) and exits 0. A port in use names
TOLLGATE_PORT and TOLLGATE_AWS_PORT, the way out."""

from __future__ import annotations

import os
import socket
import subprocess
import sys


def run_local(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tollgate.local", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,  # 0.1.0 ran a stack here until killed
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_help_prints_usage_and_exits_0() -> None:
    for flag in ("--help", "-h"):
        done = run_local(flag)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("usage: python -m tollgate.local")
        assert "TOLLGATE_PORT" in done.stdout and "TOLLGATE_AWS_PORT" in done.stdout
        assert "Tollgate is running" not in done.stdout + done.stderr


def test_unknown_option_is_exit_2_without_a_stack() -> None:
    done = run_local("--bogus")
    assert done.returncode == 2 and "unrecognized arguments" in done.stderr
    assert "Tollgate is running" not in done.stdout


def test_a_port_in_use_names_the_port_variables() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_local(
            env={"TOLLGATE_AWS_PORT": str(port), "TOLLGATE_PORT": "8080"}
        )  # moto binds first
    assert done.returncode == 1
    assert "cannot start" in done.stderr
    assert f"{port} (TOLLGATE_AWS_PORT)" in done.stderr and "TOLLGATE_PORT" in done.stderr
