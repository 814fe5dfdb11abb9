"""The HTML statement in a real headless browser (Debian's Chromium): the page the CLI wrote
renders offline with every line, the totals and both charts; its screenshot is a real
picture (a PNG of the requested size, many colours, one bar per day with usage in the
chart colours); the page starts no network request, and the check that says so catches a
page that does. Skips locally without Chromium; fails under CI=true (tests/browser_support.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from functions.statements.html import COMPLETION_COLOUR, COST_COLOUR, PROMPT_COLOUR
from tests import browser_support as browser
from tests.integration.conftest import Run
from tests.statement_support import HOSTILE_PRINCIPALS, Page, live, november

T0_MS = 1_793_491_200_000  # 2026-11-01T00:00:00Z


@pytest.fixture
def chromium() -> str:
    return browser.chromium()


@pytest.fixture
def written(cli: Run, dynamodb: Any, tmp_path: Path) -> tuple[Path, dict[str, Any], list[Any]]:
    """(the page the CLI wrote for November, the statement document, the usage events)."""
    cli("plans", "create", "gold", "--price-per-1k-prompt", "0.002").ok()
    cli("tenants", "create", "acme", "--plan", "gold").ok()
    items = november(dynamodb)
    page = tmp_path / "statement.html"
    base = ("statement", "--tenant", "acme", "--period", "2026-11")
    cli(*base, "--format", "html", "--out", str(page)).ok()
    return page, cli(*base, "--format", "json").ok().json, items


def rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def bar_groups(image: Any, colour: str) -> int:
    """How many separate bars of ``colour`` the picture shows: runs of adjacent pixel
    columns holding that colour, at least 15 px wide (a day's bar is ~25 px at this window
    size; the legend's 10 px swatch of the same colour is not a bar)."""
    width, height = image.size
    pixels = image.load()
    want = rgb(colour)
    columns = [any(pixels[x, y] == want for y in range(height)) for x in range(width)]
    runs, run = [], 0
    for present in [*columns, False]:
        if present:
            run += 1
        elif run:
            runs.append(run)
            run = 0
    return sum(1 for r in runs if r >= 15)


def test_the_page_renders_offline_with_lines_totals_and_charts(
    chromium: str, written: tuple[Path, dict[str, Any], list[Any]], tmp_path: Path
) -> None:
    page, doc, _ = written
    dom, netlog = browser.dump_dom(chromium, page, tmp_path)
    parsed = Page(dom)
    rows = parsed.lines()
    assert len(rows) == len(doc["line_items"]) > 3
    assert [r["principal"] for r in rows] == [line["principal"] for line in doc["line_items"]]
    assert set(HOSTILE_PRINCIPALS) <= {r["principal"] for r in rows}
    assert parsed.totals()["amount_usd"] == doc["totals"]["amount_usd"]
    svgs = {a.get("id") for t, a in parsed.tags if t == "svg"}
    assert {"chart-tokens", "chart-cost"} <= svgs
    assert parsed.bars
    # No caller-controlled name became an element in the browser's DOM either.
    assert not [t for t, _ in parsed.tags if t in ("script", "img", "iframe", "link", "object")]
    assert browser.page_requests(netlog) == []


def test_the_screenshot_shows_the_statement_and_a_bar_per_day(
    chromium: str, written: tuple[Path, dict[str, Any], list[Any]], tmp_path: Path
) -> None:
    from PIL import Image

    page, _, items = written
    png = browser.screenshot(chromium, page, tmp_path)
    assert png.stat().st_size > 10_000
    with Image.open(png) as shot:
        shot.load()
        assert shot.format == "PNG" and shot.size == browser.WINDOW
        image = shot.convert("RGB")
    colours = image.getcolors(maxcolors=1 << 24) or []
    assert len(colours) > 50, f"{len(colours)} distinct colours: a blank or flat page"
    days = {(i["ts"] - T0_MS) // 86_400_000 for i in live(items)}
    assert bar_groups(image, COST_COLOUR) == len(days)
    assert bar_groups(image, PROMPT_COLOUR) == len(days)
    assert bar_groups(image, COMPLETION_COLOUR) == len(days)


def test_an_empty_month_renders_its_notice(chromium: str, cli: Run, tmp_path: Path) -> None:
    cli("plans", "create", "gold").ok()
    cli("tenants", "create", "acme", "--plan", "gold").ok()
    page = tmp_path / "empty.html"
    cli("statement", "--tenant", "acme", "--period", "2026-10", "--format", "html",
        "--out", str(page)).ok()  # fmt: skip
    dom, netlog = browser.dump_dom(chromium, page, tmp_path)
    assert "No live usage in 2026-10" in dom and Page(dom).bars == []
    assert browser.page_requests(netlog) == []


def test_the_network_check_catches_a_page_that_fetches(
    chromium: str, written: tuple[Path, dict[str, Any], list[Any]], tmp_path: Path
) -> None:
    """The control: the same page with a remote stylesheet and image (and without its
    Content-Security-Policy) is seen fetching; with the policy kept, the browser refuses."""
    page, _, _ = written
    text = page.read_text(encoding="utf-8")
    remote = (
        '<link rel="stylesheet" href="https://fonts.example.com/x.css">'
        '<img src="https://cdn.example.com/x.png" alt="">'
    )
    start = text.index('<meta http-equiv="Content-Security-Policy"')
    end = text.index(">", start) + 1
    without_csp = tmp_path / "fetching.html"
    without_csp.write_text(
        (text[:start] + text[end:]).replace("</body>", remote + "</body>"), encoding="utf-8"
    )
    (tmp_path / "a").mkdir()
    _, netlog = browser.dump_dom(chromium, without_csp, tmp_path / "a")
    assert sorted(browser.page_requests(netlog)) == [
        "https://cdn.example.com/x.png",
        "https://fonts.example.com/x.css",
    ]
    with_csp = tmp_path / "blocked.html"
    with_csp.write_text(text.replace("</body>", remote + "</body>"), encoding="utf-8")
    (tmp_path / "b").mkdir()
    _, netlog = browser.dump_dom(chromium, with_csp, tmp_path / "b")
    assert browser.page_requests(netlog) == []
