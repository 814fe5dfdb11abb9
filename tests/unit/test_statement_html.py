"""The HTML statement page, pure (functions/statements/html.py): caller-controlled names
escaped, an empty month said in words, the totals row equal to the document's totals,
columns taken from the lines (fields added later show up; absent ones are not invented),
a bar per day with usage, and nothing that would make the browser fetch anything."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from functions.statements.html import columns_of, render
from functions.statements.logic import build
from functions.usage.logic import Counters, line_value
from tests.statement_support import Page

HOSTILE = ('<script>alert("x")</script>', 'o\'brien & "co"', "</td></tr></table><img src=x>")


def statement(names: list[tuple[str, str]], n: int = 3) -> dict[str, Any]:
    """A statement document built by the real builder, one line per (model, principal)."""
    lines = []
    for i, (model, principal) in enumerate(names):
        c = Counters(requests=n + i, prompt_tokens=1000 * (i + 1), completion_tokens=250 + i,
                     cost_micros=12_345 * (i + 1), errors=i % 2)  # fmt: skip
        lines.append((line_value(model, principal, "gold"), c))
    total = Counters()
    for _, c in lines:
        total.add(c)
    doc = build("acme", "2026-11", lines, total if lines else None, lambda _: None, "2026-12-01")
    return doc.as_dict()


def days_of(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Spread the document's totals over three days of its month (and one outside it)."""
    t = doc["totals"]
    parts = [(1, 1), (5, 2), (30, 3)]
    out = []
    for day, weight in parts:
        out.append(
            {
                "day": f"2026-11-{day:02d}",
                **{
                    k: t[k] * weight // 6
                    for k in ("requests", "prompt_tokens", "completion_tokens")
                },
                "cost_micros": t["amount_micros"] * weight // 6,
            }
        )
    out.append({"day": "2026-12-01", "requests": 1, "prompt_tokens": 1, "completion_tokens": 1,
                "cost_micros": 1})  # fmt: skip
    return out


def test_caller_controlled_names_are_escaped() -> None:
    names = [(HOSTILE[0], HOSTILE[1]), (HOSTILE[2], "<b>bold</b>")]
    doc = statement(names)
    page = render(doc, days_of(doc))
    parsed = Page(page)
    assert not [t for t, _ in parsed.tags if t in ("script", "img", "b", "iframe", "link")]
    assert [(r["model"], r["principal"]) for r in parsed.lines()] == sorted(names)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "o&#x27;brien &amp; &quot;co&quot;" in page


@settings(max_examples=60, derandomize=True, deadline=None)
@given(
    model=st.text(min_size=1, max_size=40),
    principal=st.text(min_size=1, max_size=40),
)
def test_any_name_comes_back_as_text_never_as_markup(model: str, principal: str) -> None:
    doc = statement([(model, principal)])
    parsed = Page(render(doc, days_of(doc)))
    allowed = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "dl", "div",
               "dt", "dd", "table", "thead", "tbody", "tfoot", "tr", "th", "td", "svg", "line",
               "text", "rect", "span"}  # fmt: skip
    assert {t for t, _ in parsed.tags} <= allowed
    (line,) = parsed.lines()
    assert (line["model"], line["principal"]) == (model, principal)


def test_the_totals_row_is_the_documents_totals() -> None:
    doc = statement([("tollgate-echo", "svc"), ("bedrock:haiku", "agent"), ("gpt-4o", "bot")])
    parsed = Page(render(doc, days_of(doc)))
    totals = parsed.totals()
    shown = {k: v.replace(",", "") for k, v in totals.items() if v}
    expected = {k: str(v) for k, v in doc["totals"].items() if not k.endswith("_micros")}
    assert shown == expected
    # and the lines' amounts add up to the total shown (to the micro-dollar)
    amounts = [int(r["amount_usd"].replace(".", "")) for r in parsed.lines()]
    assert sum(amounts) == doc["totals"]["amount_micros"]
    assert f"USD {doc['totals']['amount_usd']}" in "".join(parsed.text)


def test_an_empty_month_says_so() -> None:
    doc = statement([])
    assert doc["line_items"] == []
    page = render(doc, [])
    parsed = Page(page)
    assert "No live usage in 2026-11" in page and "No usage to chart." in page
    assert parsed.lines() == [] and parsed.bars == []
    assert parsed.totals()["amount_usd"] == "0.000000"


def test_columns_follow_the_lines() -> None:
    doc = statement([("m", "p")])
    base = columns_of(doc["line_items"])
    assert base[:3] == ["model", "principal", "plan"] and base[-1] == "amount_usd"
    assert not [c for c in base if c.endswith("_micros")]
    # pricing's fields (issue 14) are on every line, in reading order, money last
    assert (
        base.index("prompt_tokens") < base.index("cached_tokens") < base.index("reasoning_tokens")
    )
    assert base[-2:] == ["cost_usd", "amount_usd"]
    # Fields another part of the project adds to the lines show up, in reading order.
    richer = [
        {**line, "cached_tokens": 7, "reasoning_tokens": 3, "cost_usd": "0.012345",
         "tag:team": "<search>"}
        for line in doc["line_items"]
    ]  # fmt: skip
    doc2 = {**doc, "line_items": richer, "totals": {**doc["totals"], "cached_tokens": 7}}
    cols = columns_of(richer)
    assert (
        cols.index("prompt_tokens") < cols.index("cached_tokens") < cols.index("completion_tokens")
    )
    assert cols.index("completion_tokens") < cols.index("reasoning_tokens")
    assert cols[-2:] == ["cost_usd", "amount_usd"] and "tag:team" in cols
    page = render(doc2, [])
    assert "Cached tokens" in page and "Reasoning tokens" in page and "Cost (USD)" in page
    (line,) = Page(page).lines()
    assert line["tag:team"] == "<search>" and line["cached_tokens"] == "7"
    assert Page(page).totals()["cached_tokens"] == "7"


def test_a_bar_per_day_with_usage_and_the_days_add_up() -> None:
    doc = statement([("tollgate-echo", "svc"), ("bedrock:haiku", "agent")])
    days = days_of(doc)
    parsed = Page(render(doc, days))
    cost = [b for b in parsed.bars if "cost" in (b.get("class") or "")]
    prompt = [b for b in parsed.bars if "prompt" in (b.get("class") or "")]
    assert [b["data-day"] for b in cost] == ["2026-11-01", "2026-11-05", "2026-11-30"]
    assert sum(int(b["data-value"] or 0) for b in cost) == sum(d["cost_micros"] for d in days[:3])
    assert sum(int(b["data-value"] or 0) for b in prompt) == sum(
        d["prompt_tokens"] for d in days[:3]
    )
    # Heights are proportional and the tallest fits the plot.
    heights = [float(b["height"] or 0) for b in cost]
    assert heights == sorted(heights) and 0 < heights[-1] <= 240
    assert abs(heights[0] / heights[-1] - 1 / 3) < 0.01
    # 30 day labels on the axis of November, in each chart
    labels = [t for t in parsed.text if re.fullmatch(r"\d{1,2}", t)]
    assert labels.count("30") == 2 and "31" not in labels


def test_the_page_never_reaches_the_network() -> None:
    doc = statement([(HOSTILE[0], "https://evil.example/x.js")])
    page = render(doc, days_of(doc))
    lowered = page.lower()
    for needle in ("<script", "<link", "<img", "<iframe", "@import", "url(", "@font-face",
                   " src=", " href=", "http://"):  # fmt: skip
        assert needle not in lowered, needle
    # the only https:// is the caller's escaped text inside a cell
    assert lowered.count("https://") == 1
    assert "default-src 'none'" in page
