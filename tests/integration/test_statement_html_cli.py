"""``tollgate statement --format html`` on moto: the page holds the statement document's
lines and totals (what ``--format json`` prints) and a bar per day of the month's
``day#...#all#-`` rollups; ``--out`` and the default file name; ``--json`` prints one
document naming the file; bad input is exit 2 and writes no file."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Run
from tests.statement_support import DAYS, HOSTILE_PRINCIPALS, Page, live, november


@pytest.fixture
def acme(cli: Run) -> str:
    cli("plans", "create", "gold", "--price-per-1k-prompt", "0.002",
        "--price-per-1k-completion", "0.006").ok()  # fmt: skip
    cli("tenants", "create", "acme", "--plan", "gold").ok()
    return "acme"


@pytest.fixture
def traffic(acme: str, dynamodb: Any) -> list[dict[str, Any]]:
    return november(dynamodb)


def document(cli: Run) -> dict[str, Any]:
    doc: dict[str, Any] = (
        cli("statement", "--tenant", "acme", "--period", "2026-11", "--format", "json").ok().json
    )
    return doc


def test_html_out_holds_the_documents_lines_totals_and_days(
    cli: Run, traffic: list[dict[str, Any]], tmp_path: Path
) -> None:
    out = tmp_path / "acme.html"
    result = cli("statement", "--tenant", "acme", "--period", "2026-11", "--format", "html",
                 "--out", str(out)).ok()  # fmt: skip
    summary = result.json  # one document naming the file
    assert summary["path"] == str(out.resolve()) and summary["format"] == "html"
    assert summary["bytes"] == out.stat().st_size > 0
    doc = document(cli)
    assert summary["totals"] == doc["totals"] and summary["line_items"] == len(doc["line_items"])
    page = Page(out.read_text(encoding="utf-8"))
    rows = page.lines()
    assert len(rows) == len(doc["line_items"]) > 3
    for row, line in zip(rows, doc["line_items"], strict=True):
        for column, text in row.items():
            value = line[column]
            assert text.replace(",", "") == ("" if value is None else str(value)), column
    shown = {k: v.replace(",", "") for k, v in page.totals().items() if v}
    assert shown == {k: str(v) for k, v in doc["totals"].items() if not k.endswith("_micros")}
    # The hostile names are there as text, and nothing in the page became markup.
    principals = {r["principal"] for r in rows}
    assert set(HOSTILE_PRINCIPALS) <= principals
    assert not [t for t, _ in page.tags if t in ("script", "img", "iframe", "link")]
    # A cost bar per day with live usage, adding up to the statement's total.
    cost = [b for b in page.bars if "cost" in (b.get("class") or "")]
    live_days = sorted({(i["ts"] - 1_793_491_200_000) // 86_400_000 + 1 for i in live(traffic)})
    assert [int((b["data-day"] or "")[-2:]) for b in cost] == live_days
    assert set(live_days) <= set(DAYS)
    assert sum(int(b["data-value"] or 0) for b in cost) == doc["totals"]["amount_micros"]
    tokens = [
        b for b in page.bars if (b.get("class") or "").split()[-1] in ("prompt", "completion")
    ]
    assert sum(int(b["data-value"] or 0) for b in tokens) == (
        doc["totals"]["prompt_tokens"] + doc["totals"]["completion_tokens"]
    )


def test_html_without_out_writes_the_default_file_here(
    cli: Run, traffic: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    human = cli("statement", "--tenant", "acme", "--period", "2026-11", "--format", "html",
                json=False).ok().out  # fmt: skip
    written = tmp_path / "statement-acme-2026-11.html"
    assert written.is_file() and str(written.resolve()) in human.replace("\n", "")
    assert human.count("\n") == 1 and "written to" in human
    assert "<!DOCTYPE html>" in written.read_text(encoding="utf-8")
    # A second run replaces the file (whole: no temporary file is left behind).
    cli("statement", "--tenant", "acme", "--period", "2026-11", "--format", "html").ok()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["statement-acme-2026-11.html"]


def test_an_empty_month_is_a_page_that_says_so(cli: Run, acme: str, tmp_path: Path) -> None:
    out = tmp_path / "empty.html"
    summary = cli("statement", "--tenant", "acme", "--period", "2026-10", "--format", "html",
                  "--out", str(out)).ok().json  # fmt: skip
    assert summary["line_items"] == 0 and summary["totals"]["amount_usd"] == "0.000000"
    text = out.read_text(encoding="utf-8")
    assert "No live usage in 2026-10" in text and Page(text).bars == []


def test_csv_and_json_can_be_written_to_a_file_too(
    cli: Run, traffic: list[dict[str, Any]], tmp_path: Path
) -> None:
    base = ("statement", "--tenant", "acme", "--period", "2026-11")
    for fmt in ("csv", "json"):
        out = tmp_path / f"s.{fmt}"
        summary = cli(*base, "--format", fmt, "--out", str(out)).ok().json
        assert summary["format"] == fmt and summary["path"] == str(out.resolve())
        stdout = cli(*base, "--format", fmt, json=False).ok().out
        text = out.read_text(encoding="utf-8")
        if fmt == "csv":
            assert list(csv.reader(io.StringIO(text))) == list(csv.reader(io.StringIO(stdout)))
        else:
            mine, theirs = json.loads(text), json.loads(stdout)
            mine.pop("generated_at"), theirs.pop("generated_at")
            assert mine == theirs


@pytest.mark.parametrize(
    "args",
    [
        ("--format", "pdf"),
        ("--format", "HTML"),
        ("--out", "x.html"),  # --out without a format
        ("--format", "html", "--out", "missing-dir/x.html"),
        ("--format", "html", "--out", "."),
        ("--format", "html", "--period", "2026-11-05"),
        ("--format", "html", "--period", "2026-13"),
    ],
)
def test_bad_input_exits_2_and_writes_no_file(
    bad_input: Any, acme: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    bad_input("statement", "--tenant", "acme", *args)
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_tenant_writes_no_file(
    bad_input: Any, acme: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    bad_input("statement", "--tenant", "nobody", "--period", "2026-11", "--format", "html")
    assert list(tmp_path.iterdir()) == []
