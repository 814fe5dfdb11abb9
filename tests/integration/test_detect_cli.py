"""``tollgate detect backtest``: per key, when it would have been suspended; --plan and the
overrides; .jsonl and .jsonl.gz; bad input (exit 2, one line); and nothing is ever written."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.integration.conftest import Run

TRACES = Path(__file__).resolve().parents[2] / "bench" / "traces"
T0 = 1_772_409_600_000
KEY = "key_AAAAAAAAAAAAAAAA"


def small_trace(path: Path) -> Path:
    """A key quiet for an hour, then 60,000 tokens in one minute."""
    lines = [
        {"ts": T0 + m * 60_000, "key_id": KEY, "tenant_id": "acme", "prompt_tokens": 50,
         "completion_tokens": 10, "source_ip": "10.0.0.1"}
        for m in range(60)
    ] + [
        {"ts": T0 + 61 * 60_000 + i * 1000, "key_id": KEY, "tenant_id": "acme",
         "prompt_tokens": 2000, "completion_tokens": 1000, "source_ip": "185.220.0.1"}
        for i in range(20)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_the_shipped_abuse_week(cli: Run, snapshot: Callable[[], dict[str, list[str]]]) -> None:
    before = snapshot()
    out = cli("detect", "backtest", str(TRACES / "abuse.jsonl.gz")).ok().json
    truth = json.loads((TRACES / "abuse.truth.json").read_text())
    expected = {c["key_id"] for c in truth["abuse"] if "key_id" in c} | {
        k["key_id"] for c in truth["abuse"] for k in c.get("keys", [])
    }
    assert {s["key_id"] for s in out["suspensions"]} == expected
    assert out["events"] == truth["abuse_events"] and out["events_per_s"] > 0
    assert [s["source"] for s in out["sources"]] == [
        c["source_ip"] for c in truth["abuse"] if c["type"] == "stuffing"
    ]
    assert snapshot() == before  # writes nothing


def test_human_output_plain_and_gzipped(cli: Run, tmp_path: Path) -> None:
    plain = small_trace(tmp_path / "t.jsonl")
    zipped = tmp_path / "t.jsonl.gz"
    zipped.write_bytes(gzip.compress(plain.read_bytes()))
    for trace in (plain, zipped):
        out = cli("detect", "backtest", str(trace), json=False).ok().out
        assert "Would suspend 1 key(s)" in out and KEY in out and "token_spike" in out
        assert "Nothing was written" in out


def test_plan_and_overrides(cli: Run, tmp_path: Path) -> None:
    trace = str(small_trace(tmp_path / "t.jsonl"))
    cli("plans", "create", "watch", "--spike-policy", "alert").ok()
    alerting = cli("detect", "backtest", trace, "--plan", "watch").ok().json
    assert alerting["suspensions"] == [] and len(alerting["alerts"]) == 1
    assert alerting["policy"]["mode"] == "alert"
    lax = cli("detect", "backtest", trace, "--spike-floor-tpm", "100000").ok().json
    assert lax["suspensions"] == [] and lax["alerts"] == []
    off = cli("detect", "backtest", trace, "--policy", "off").ok().json
    assert off["suspensions"] == off["alerts"] == []


def test_bad_input(bad_input: Any, tmp_path: Path) -> None:
    trace = str(small_trace(tmp_path / "t.jsonl"))
    bad_input("detect", "backtest", str(tmp_path / "missing.jsonl"))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"ts": 1, "key_id": "k"}\nnot json\n')
    assert "line 2" in bad_input("detect", "backtest", str(broken)).err
    listy = tmp_path / "list.jsonl"
    listy.write_text("[1, 2]\n")
    bad_input("detect", "backtest", str(listy))
    notgz = tmp_path / "fake.jsonl.gz"
    notgz.write_text("plain text")
    bad_input("detect", "backtest", str(notgz))
    bad_input("detect", "backtest", trace, "--spike-factor", "0.5")
    bad_input("detect", "backtest", trace, "--policy", "sometimes")
    bad_input("detect", "backtest", trace, "--plan", "nosuchplan")
