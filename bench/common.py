"""Helpers shared by the benchmark sections."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Figure:
    section: str
    name: str
    value: float | int | str
    unit: str = ""
    baseline: str = ""
    target: str = ""
    ok: bool | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Section:
    name: str
    figures: list[Figure] = field(default_factory=list)

    def add(self, name: str, value: float | int | str, **kw: Any) -> Figure:
        fig = Figure(self.name, name, value, **kw)
        self.figures.append(fig)
        print(f"  {name}: {value} {kw.get('unit', '')}".rstrip(), flush=True)
        return fig


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def paired(a: Callable[[], Any], b: Callable[[], Any], n: int) -> tuple[list[float], list[float]]:
    """Time ``a`` and ``b`` alternately, so background load hits both alike."""
    ta: list[float] = []
    tb: list[float] = []
    for _ in range(n):
        for fn, out in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0) * 1000)
    return ta, tb


def import_time_ms(statement: str, runs: int = 5, env: dict[str, str] | None = None) -> float:
    """Median wall time of a fresh interpreter running ``statement`` (minus an empty one)."""

    def once(code: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        return (time.perf_counter() - t0) * 1000

    empty = statistics.median(once("pass") for _ in range(runs))
    return statistics.median(once(statement) for _ in range(runs)) - empty


@contextmanager
def count_calls(*clients: Any, service: str = "dynamodb") -> Iterator[list[str]]:
    """Every API call the ``clients`` make inside the block (a botocore event hook)."""
    calls: list[str] = []

    def hook(model: Any, **_: Any) -> None:
        calls.append(model.name)

    for client in clients:
        client.meta.events.register(f"before-call.{service}", hook)
    try:
        yield calls
    finally:
        for client in clients:
            client.meta.events.unregister(f"before-call.{service}", hook)
