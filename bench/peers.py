"""Peer row: zae-limiter's acquire against the same moto server, in the same run.

zae-limiter (PyPI, a DynamoDB token-bucket rate limiter; pinned in bench/requirements-peers.txt)
cannot share the project's virtualenv: it imports aiobotocore at import time, and every
aiobotocore release pins botocore to a narrow range (3.10.0: ``botocore<1.43.118``) while the
project pins botocore 1.44.8 (requirements-dev.txt). So it runs in its own virtualenv
(``.venv/peers``, built on first use from bench/requirements-peers.txt), as a child process
pointed at the bench's moto server: this file, run by that interpreter, is the driver (it
imports only the standard library at the top, so it runs without the project installed).

Measured, each in the same run on the same server:

* latency: one ``acquire`` (``with limiter.acquire(...)``, one per-minute limit, consume 1)
  against one plain ``GetItem`` of a small item, from the same process and the same botocore,
  alternated (``paired``), median and p99 over ``N_LATENCY`` pairs;
* write units per admission and round trips per admission, by the server's write meter
  (``server.metered()``, DynamoDB's item-size rules, indexes included) over ``N_ADMIT``
  admissions in the steady state;
* beside it, ours: the authorizer handler's write units and round trips per authorization,
  same meter, same server (a 1-key tenant).

If the peer cannot be installed or run, the section says what failed; nothing is estimated.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

N_LATENCY = 300
N_ADMIT = 100
ROOT = Path(__file__).resolve().parent.parent
PEER_VENV = ROOT / ".venv" / "peers"
PEER_REQUIREMENTS = Path(__file__).resolve().parent / "requirements-peers.txt"
PEER_TABLE = "zae-peer"  # zae-limiter's one table (its "stack" name)
BASELINE_TABLE = "zae-peer-baseline"  # the plain GetItem's table


# -- the driver: runs in the peer's virtualenv --------------------------------------------
def _driver(endpoint: str) -> None:  # pragma: no cover - runs in the peer's interpreter
    """Answer one JSON line per command read on stdin: ``setup``, ``admit N``,
    ``paired N``, ``quit``."""
    import warnings

    warnings.simplefilter("ignore")  # zae-limiter's deprecation notices
    import boto3
    from zae_limiter import Limit, SyncRateLimiter, SyncRepository

    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    calls: list[str] = []
    client.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    limits = [Limit.per_minute("rpm", 10**9)]
    limiter: Any = None

    def acquire() -> None:
        with limiter.acquire(
            entity_id="bench-key", resource="chat", consume={"rpm": 1}, limits=limits
        ):
            pass

    def get_item() -> None:
        client.get_item(TableName=BASELINE_TABLE, Key={"pk": {"S": "k"}})

    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        out: dict[str, Any] = {"ok": True}
        if command == "setup":
            # The table as zae-limiter defines it (no CloudFormation stack: moto has no
            # Lambda runtime here), then open() registers the namespace and version record.
            SyncRepository(
                name=PEER_TABLE, region="us-east-1", endpoint_url=endpoint,
                _skip_deprecation_warning=True,
            ).create_table()  # fmt: skip
            repo = SyncRepository.open(
                stack=PEER_TABLE, region="us-east-1", endpoint_url=endpoint, auto_update=False
            )
            limiter = SyncRateLimiter(repository=repo)
            client.create_table(
                TableName=BASELINE_TABLE,
                BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            )
            client.put_item(TableName=BASELINE_TABLE, Item={"pk": {"S": "k"}, "v": {"N": "1"}})
            for _ in range(20):  # warm-up: the bucket exists, caches are filled
                acquire()
                get_item()
            import zae_limiter

            out["version"] = zae_limiter.__version__
        elif command == "admit":
            for _ in range(int(arg)):
                acquire()
        elif command == "paired":
            a: list[float] = []
            b: list[float] = []
            for _ in range(int(arg)):
                for fn, samples in ((get_item, a), (acquire, b)):
                    t0 = time.perf_counter()
                    fn()
                    samples.append((time.perf_counter() - t0) * 1000)
            out["get_item_ms"], out["acquire_ms"] = a, b
        elif command == "quit":
            print(json.dumps(out), flush=True)
            return
        else:
            out = {"ok": False, "error": f"unknown command {command!r}"}
        print(json.dumps(out), flush=True)


# -- the section: runs in the bench ---------------------------------------------------------
def _peer_python() -> Path:
    """The peer virtualenv's interpreter, built from bench/requirements-peers.txt if needed."""
    python = PEER_VENV / "bin" / "python"
    stamp = PEER_VENV / ".installed"
    wanted = PEER_REQUIREMENTS.read_text()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", str(PEER_REQUIREMENTS)],
        check=True,
    )
    stamp.write_text(wanted)
    return python


Ask = Callable[[str], dict[str, Any]]


@contextmanager
def _peer(python: Path, endpoint: str) -> Iterator[Ask]:
    """The driver as a child process: ``ask(command)`` sends one command, returns its answer."""
    from tollgate.local.aws import client_environment

    env = {**os.environ, **client_environment(endpoint)}
    env.pop("AWS_ENDPOINT_URL", None)  # the driver passes the endpoint itself
    with (
        tempfile.TemporaryFile() as err,
        subprocess.Popen(
            [str(python), str(Path(__file__).resolve()), "--driver", endpoint],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=env,
            cwd=tempfile.gettempdir(),  # never import the project from the peer's side
        ) as proc,
    ):
        assert proc.stdin is not None and proc.stdout is not None
        stdin, stdout = proc.stdin, proc.stdout

        def ask(command: str) -> dict[str, Any]:
            stdin.write(command + "\n")
            stdin.flush()
            line = stdout.readline()
            if not line:
                proc.wait(timeout=30)
                err.seek(0)
                tail = err.read().decode(errors="replace").strip().splitlines()[-3:]
                raise RuntimeError(f"peer driver exited {proc.returncode}: {' | '.join(tail)}")
            answer: dict[str, Any] = json.loads(line)
            if not answer.get("ok"):
                raise RuntimeError(f"peer driver: {answer.get('error')}")
            return answer

        try:
            yield ask
        finally:
            if proc.poll() is None:
                with suppress(RuntimeError, BrokenPipeError):
                    ask("quit")
                proc.wait(timeout=30)


def _ours(server: Any, n: int) -> tuple[float, float, dict[str, int]]:
    """The authorizer's write units and round trips per authorization (1-key tenant)."""
    from bench.gate import _Ctx, _event, _tenant
    from functions.authorizer import handler
    from functions.keys.service import KeyService

    _, secret = _tenant(KeyService(), {"requests_per_minute": 10**9})
    for _ in range(5):
        handler.handler(_event(secret), _Ctx())  # warm: the key's facts are cached
    with server.metered() as m:
        for _ in range(n):
            handler.handler(_event(secret), _Ctx())
    return m.write_units_total / n, m.requests / n, m.by_index


def run(server: Any = None) -> Any:
    from bench.common import Section, percentile

    sec = Section("peers")
    if server is None:
        sec.add("zae-limiter acquire", "not run", note="needs the bench's moto server")
        return sec
    ours_units, ours_trips, ours_by = _ours(server, N_ADMIT)
    try:
        python = _peer_python()
    except (subprocess.CalledProcessError, OSError) as e:
        sec.add(
            "zae-limiter acquire",
            "not run",
            note=f"could not install bench/requirements-peers.txt into .venv/peers: {e}",
        )
        return sec
    try:
        with _peer(python, server.endpoint) as ask:
            version = ask("setup")["version"]
            with server.metered(tables=[PEER_TABLE]) as m:
                ask(f"admit {N_ADMIT}")
            pairs = ask(f"paired {N_LATENCY}")
    except RuntimeError as e:
        sec.add("zae-limiter acquire", "failed", note=str(e)[:300])
        return sec

    units = m.write_units_total / N_ADMIT
    trips = m.requests / N_ADMIT
    ops = ", ".join(f"{op} {count / N_ADMIT:g}" for op, count in sorted(m.round_trips.items()))
    where = ", ".join(f"{k} {v / N_ADMIT:g}" for k, v in sorted(m.by_index.items()))
    ours_where = ", ".join(f"{k} {v / N_ADMIT:g}" for k, v in sorted(ours_by.items()))
    sec.add(
        f"zae-limiter {version}: write units per admission (table + indexes)",
        round(units, 2),
        unit="WCU",
        baseline=f"ours (authorizer, 1-key tenant): {ours_units:g} WCU ({ours_where})",
        note=f"peer: {where}; DynamoDB item-size rules (tollgate/local/capacity.py)",
    )
    sec.add(
        f"zae-limiter {version}: DynamoDB round trips per admission",
        round(trips, 2),
        baseline=f"ours: {ours_trips:g}",
        note=ops,
    )
    get_ms, acq_ms = pairs["get_item_ms"], pairs["acquire_ms"]
    for p in (50, 99):
        g, a = percentile(get_ms, p), percentile(acq_ms, p)
        sec.add(
            f"zae-limiter {version}: acquire p{p} / plain GetItem p{p} (moto server)",
            round(a / g, 2),
            unit="x",
            baseline=f"GetItem {g:.2f} ms; acquire {a:.2f} ms; {N_LATENCY} pairs",
            note=f"median acquire {statistics.median(acq_ms):.2f} ms, same client process",
        )
    return sec


if __name__ == "__main__" and sys.argv[1:2] == ["--driver"]:
    _driver(sys.argv[2])
