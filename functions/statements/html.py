"""A statement as one self-contained HTML page: the lines, the totals, a per-day chart.

Pure: :func:`render` takes the statement's document (``Statement.as_dict()``, the same one
``--format json`` prints) and the month's per-day live usage (``day#YYYY-MM-DD#all#-``
rollups, functions/statements/service.py ``daily``) and returns the page as a string, so the
CLI (tollgate/cli/statement.py) and the monthly statements function can both write it.

Self-contained means the page needs no network to open: the CSS is inline, the chart is
inline SVG, there is no script and no font or image from anywhere, and a
Content-Security-Policy (``default-src 'none'``) makes the browser refuse any fetch a later
edit might add. Every string that reaches the page is escaped (model and principal names
come from callers). Columns are taken from the document's lines, so a field added to the
statement (cached or reasoning tokens, a cost column) shows up without a change here.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from html import escape
from typing import Any, Final

# Columns in the order a reader expects them; a field not listed goes before the money.
_ORDER: Final = (
    "model",
    "principal",
    "plan",
    "requests",
    "errors",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "estimated",
    "unit_price_prompt_per_1k_usd",
    "unit_price_completion_per_1k_usd",
)
_MONEY_LAST: Final = ("cost_usd", "amount_usd")
_LABELS: Final = {
    "model": "Model",
    "principal": "Principal",
    "plan": "Plan",
    "requests": "Requests",
    "errors": "Errors",
    "prompt_tokens": "Prompt tokens",
    "cached_tokens": "Cached tokens",
    "completion_tokens": "Completion tokens",
    "reasoning_tokens": "Reasoning tokens",
    "estimated": "Estimated",
    "unit_price_prompt_per_1k_usd": "USD / 1k prompt",
    "unit_price_completion_per_1k_usd": "USD / 1k completion",
    "cost_usd": "Cost (USD)",
    "amount_usd": "Amount (USD)",
}
_NUMBER: Final = re.compile(r"^-?\d+(\.\d+)?$")

# Chart colours (the browser test looks for these pixels in the screenshot).
PROMPT_COLOUR: Final = "#2f6fdf"
COMPLETION_COLOUR: Final = "#f28e2b"
COST_COLOUR: Final = "#2e9d5b"

_CSP: Final = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_CSS: Final = """
:root { color-scheme: light; }
body { font-family: system-ui, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif;
       margin: 28px auto; max-width: 1240px; padding: 0 20px; color: #1d2430;
       background: #ffffff; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 10px; }
.meta { color: #5b6576; margin: 0 0 20px; }
.summary { display: flex; gap: 16px; flex-wrap: wrap; margin: 0 0 8px; }
.summary div { background: #f3f5f9; border: 1px solid #dde2ea; border-radius: 6px;
               padding: 10px 16px; min-width: 150px; }
.summary dt { color: #5b6576; font-size: 12px; text-transform: uppercase; }
.summary dd { margin: 2px 0 0; font-size: 20px; font-weight: 600;
              font-variant-numeric: tabular-nums; }
.table { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 12px; }
th, td { border-bottom: 1px solid #e3e7ee; padding: 5px 6px; text-align: left;
         vertical-align: top; overflow-wrap: anywhere; }
th { background: #f3f5f9; font-weight: 600; vertical-align: bottom; overflow-wrap: normal; }
td.name { min-width: 5em; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; overflow-wrap: normal; }
tfoot td { font-weight: 700; border-top: 2px solid #1d2430; }
.empty { background: #fff8e6; border: 1px solid #f0d48a; border-radius: 6px;
         padding: 12px 16px; }
.chart svg { width: 100%; height: auto; display: block; }
.chart text { font-size: 11px; fill: #5b6576; }
.chart .grid { stroke: #e3e7ee; stroke-width: 1; }
.chart .axis { stroke: #9aa3b2; stroke-width: 1; }
.legend { font-size: 12px; color: #5b6576; margin: 4px 0 0; }
.swatch { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 12px; }
.note { color: #5b6576; font-size: 12px; margin-top: 24px; }
@media print { body { margin: 0; max-width: none; } table { font-size: 10px; }
               .table { overflow: visible; } .chart { break-inside: avoid; } }
"""


def render(document: Mapping[str, Any], days: Iterable[Mapping[str, Any]] = ()) -> str:
    """The page of a statement document; ``days`` are ``{"day": "YYYY-MM-DD", requests,
    prompt_tokens, completion_tokens, cost_micros, ...}`` (days without usage may be left
    out; days outside the statement's month are ignored)."""
    tenant = _text(document.get("tenant_id", ""))
    period = _text(document.get("period", ""))
    currency = _text(document.get("currency", "USD"))
    lines: list[Mapping[str, Any]] = list(document.get("line_items") or [])
    totals: Mapping[str, Any] = document.get("totals") or {}
    series = _month_series(str(document.get("period", "")), days)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Statement {tenant} {period}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Statement {tenant} &middot; {period}</h1>",
        f'<p class="meta">{currency}, {_text(document.get("environment", "live"))} usage only'
        f" &middot; generated {_text(document.get('generated_at', ''))}</p>",
        _summary(totals, currency),
    ]
    if not lines:
        parts.append(
            f'<p class="empty" id="empty">No live usage in {period}: there is nothing to bill '
            "for this month.</p>"
        )
    parts.append(_lines_table(lines, totals))
    parts.append(_charts(series))
    note = document.get("note")
    if note:
        parts.append(f'<p class="note">{_text(note)}</p>')
    parts.append("</body></html>\n")
    return "\n".join(parts)


# -- pieces -----------------------------------------------------------------------------


def _text(value: Any) -> str:
    """A value as escaped text (quotes too: the same helper serves attributes)."""
    if value is None:
        return ""
    if isinstance(value, Mapping):
        return escape(", ".join(f"{k}={v}" for k, v in sorted(value.items())), quote=True)
    if isinstance(value, list | tuple):
        return escape(", ".join(str(v) for v in value), quote=True)
    return escape(str(value), quote=True)


def _cell(value: Any) -> str:
    """A table cell's text: counts with thousands separators, anything else as given."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return _text(value)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and bool(_NUMBER.match(value)))


def _label(column: str) -> str:
    if column in _LABELS:
        return _LABELS[column]
    words = column.replace("_", " ").strip()
    words = re.sub(r"\busd\b", "(USD)", words)
    return escape(words[:1].upper() + words[1:], quote=True)


def columns_of(lines: Sequence[Mapping[str, Any]]) -> list[str]:
    """The table's columns: every field of the lines (machine-only ``*_micros`` duplicates
    of a USD column left out), known ones in reading order, money last."""
    seen: list[str] = []
    for line in lines:
        for name in line:
            if name not in seen and not name.endswith("_micros"):
                seen.append(name)
    known = [c for c in _ORDER if c in seen]
    money = [c for c in _MONEY_LAST if c in seen]
    others = [c for c in seen if c not in _ORDER and c not in _MONEY_LAST]
    return known + others + money


def _summary(totals: Mapping[str, Any], currency: str) -> str:
    cells = [("Total", f"{currency} {_text(totals.get('amount_usd', '0'))}", "total-amount")]
    cells.append(("Requests", _cell(totals.get("requests", 0)), "total-requests"))
    tokens = sum(
        int(totals.get(k) or 0) for k in ("prompt_tokens", "completion_tokens") if k in totals
    )
    cells.append(("Tokens", f"{tokens:,}", "total-tokens"))
    if totals.get("estimated"):
        cells.append(("Estimated requests", _cell(totals["estimated"]), "total-estimated"))
    body = "".join(f'<div><dt>{k}</dt><dd id="{i}">{v}</dd></div>' for k, v, i in cells)
    return f'<dl class="summary">{body}</dl>'


def _lines_table(lines: Sequence[Mapping[str, Any]], totals: Mapping[str, Any]) -> str:
    columns = columns_of(lines) or [
        c for c in ("model", "principal", "plan", *totals) if not c.endswith("_micros")
    ]
    numeric = {
        c
        for c in columns
        if any(_is_number(x.get(c)) for x in lines)
        and all(x.get(c) is None or _is_number(x.get(c)) for x in lines)
    }
    numeric |= {c for c in columns if not lines and _is_number(totals.get(c))}
    num = ' class="num"'
    head = "".join(
        f'<th scope="col"{num if c in numeric else ""}>{_label(c)}</th>' for c in columns
    )
    rows = []
    for line in lines:
        cells = "".join(
            f'<td class="{"num" if c in numeric else "name"}" data-col="{_text(c)}">'
            f"{_cell(line.get(c))}</td>"
            for c in columns
        )
        rows.append(f'<tr class="line">{cells}</tr>')
    # The totals row: "Total" over the leading columns the totals do not have.
    lead = 0
    while lead < len(columns) and columns[lead] not in totals:
        lead += 1
    lead = max(lead, 1)
    foot = [f'<td colspan="{lead}">Total</td>']
    for c in columns[lead:]:
        value = totals.get(c)
        cls = "num" if c in numeric else "name"
        foot.append(f'<td class="{cls}" data-col="{_text(c)}">{_cell(value)}</td>')
    return (
        '<h2>Line items</h2><div class="table"><table id="lines">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody>"
        f'<tfoot><tr id="totals">{"".join(foot)}</tr></tfoot></table></div>'
    )


# -- the chart --------------------------------------------------------------------------


def _month_series(period: str, days: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One entry per day of the month (zeros where there was no usage), oldest first."""
    try:
        year, month = (int(p) for p in period.split("-"))
        count = calendar.monthrange(year, month)[1]
    except ValueError:
        return []
    given = {str(d.get("day")): d for d in days}
    out = []
    for n in range(1, count + 1):
        day = f"{year:04d}-{month:02d}-{n:02d}"
        found = given.get(day, {})
        out.append(
            {
                "day": day,
                **{k: v for k, v in found.items() if k != "day"},
                **{
                    k: int(found.get(k) or 0)
                    for k in ("requests", "prompt_tokens", "completion_tokens", "cost_micros")
                },
            }
        )
    return out


def _nice_ceiling(value: int) -> tuple[int, int]:
    """(top, ticks): the smallest 1, 2 or 5 x 10^k (k >= 1) that is >= ``value`` as the
    axis maximum, and a tick count that gives round steps (2, 5 or 10 x 10^(k-1))."""
    step = 10
    while True:
        for factor, ticks in ((1, 5), (2, 4), (5, 5)):
            if step * factor >= value:
                return step * factor, ticks
        step *= 10


def _usd_label(micros: int) -> str:
    text = format((Decimal(micros) / Decimal(1_000_000)).normalize(), "f")
    return f"${text}"


_W, _H, _LEFT, _RIGHT, _TOP, _BOTTOM = 1080, 240, 76, 12, 14, 30


def _axis(top: int, ticks: int, label: Any, svg: list[str]) -> None:
    """Gridlines from 0 to ``top`` in ``ticks`` steps; ``label`` formats a tick value."""
    plot_h = _H - _TOP - _BOTTOM
    for i in range(ticks + 1):
        y = _TOP + plot_h - plot_h * i / ticks
        svg.append(
            f'<line class="grid" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        tick = label(top * i // ticks)
        svg.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>')
    svg.append(f'<line class="axis" x1="{_LEFT}" x2="{_LEFT}" y1="{_TOP}" y2="{_TOP + plot_h}"/>')


def _bars(
    series: Sequence[Mapping[str, Any]],
    stacks: Sequence[tuple[str, str, str]],
    top: int,
    svg: list[str],
    describe: Any,
) -> None:
    """Bars per day, ``stacks`` = (measure, css class, colour) bottom to top."""
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    slot = plot_w / len(series)
    width = max(slot * 0.7, 1.0)
    for n, day in enumerate(series):
        x = _LEFT + slot * n + (slot - width) / 2
        base = float(_TOP + plot_h)
        for measure, cls, colour in stacks:
            value = int(day.get(measure) or 0)
            if value <= 0:
                continue
            height = plot_h * value / top
            base -= height
            svg.append(
                f'<rect class="bar {cls}" data-day="{_text(day["day"])}" data-value="{value}" '
                f'x="{x:.1f}" y="{base:.1f}" width="{width:.1f}" height="{height:.1f}" '
                f'fill="{colour}"><title>{describe(day)}</title></rect>'
            )
        if n % (1 if len(series) <= 31 else 2) == 0:
            svg.append(
                f'<text x="{x + width / 2:.1f}" y="{_H - 10}" text-anchor="middle">{n + 1}</text>'
            )


def _svg(chart_id: str, title: str, body: list[str]) -> str:
    return (
        f'<svg id="{chart_id}" viewBox="0 0 {_W} {_H}" '
        f'role="img" aria-label="{title}"><title>{title}</title>{"".join(body)}</svg>'
    )


def _charts(series: Sequence[Mapping[str, Any]]) -> str:
    if not series or not any(
        d["requests"] or d["prompt_tokens"] or d["completion_tokens"] or d["cost_micros"]
        for d in series
    ):
        return '<h2>Usage and cost per day</h2><p class="empty">No usage to chart.</p>'

    def describe(day: Mapping[str, Any]) -> str:
        extra = "".join(
            f", {day[k]:,} {k.replace('_', ' ')}"
            for k in ("cached_tokens", "reasoning_tokens")
            if isinstance(day.get(k), int) and not isinstance(day.get(k), bool)
        )
        return _text(
            f"{day['day']}: {day['requests']:,} requests, {day['prompt_tokens']:,} prompt + "
            f"{day['completion_tokens']:,} completion tokens{extra}, "
            f"USD {_usd_label(day['cost_micros'])[1:]}"
        )

    tokens_top, ticks = _nice_ceiling(
        max(d["prompt_tokens"] + d["completion_tokens"] for d in series)
    )
    usage: list[str] = []
    _axis(tokens_top, ticks, lambda v: f"{v:,}", usage)
    _bars(
        series,
        [("prompt_tokens", "prompt", PROMPT_COLOUR),
         ("completion_tokens", "completion", COMPLETION_COLOUR)],
        tokens_top, usage, describe,
    )  # fmt: skip
    cost_top, ticks = _nice_ceiling(max(d["cost_micros"] for d in series))
    cost: list[str] = []
    _axis(cost_top, ticks, _usd_label, cost)
    _bars(series, [("cost_micros", "cost", COST_COLOUR)], cost_top, cost, describe)
    legend = (
        f'<p class="legend"><span class="swatch" style="background:{PROMPT_COLOUR}"></span>'
        f'prompt tokens<span class="swatch" style="background:{COMPLETION_COLOUR}"></span>'
        f'completion tokens<span class="swatch" style="background:{COST_COLOUR}"></span>'
        "cost (USD); hover a bar for the day's figures</p>"
    )
    return (
        '<h2>Usage and cost per day</h2><div class="chart">'
        f"{_svg('chart-tokens', 'Tokens per day (UTC)', usage)}"
        f"{_svg('chart-cost', 'Cost per day (UTC, USD)', cost)}{legend}</div>"
    )
