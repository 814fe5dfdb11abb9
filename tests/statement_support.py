"""A month of usage for the HTML statement tests (a plain module, no fixtures): events put
into the usage table and counted by the real aggregator, with caller-controlled names that
would be markup if a page did not escape them, spread over several days of November 2026."""

from __future__ import annotations

import random
from html.parser import HTMLParser
from typing import Any, Final

from functions.common import ddb
from functions.common.config import TableNames
from functions.usage import handler as usage_handler
from tests.usage_support import T0_MS, Context, lambda_event, stream_record, usage_item

HOSTILE_PRINCIPALS: Final = ('<script>alert("p")</script>', 'o\'brien & "co"')
HOSTILE_MODEL: Final = "<img src=x onerror=alert(1)>&amp;"
DAYS: Final = (1, 2, 5, 9, 17, 23, 30)  # days of November with usage
SEED: Final = 1414


def put_and_aggregate(dynamodb: Any, items: list[dict[str, Any]]) -> None:
    """Write the events and run the usage aggregator on their stream records."""
    ddb.reset_client()
    usage_handler.use_store(None)
    seq = iter(range(7_000_000_000_000_000_000_000, 8_000_000_000_000_000_000_000))
    for item in items:
        dynamodb.put_item(
            TableName=TableNames().usage,
            Item={k: ddb.to_ddb(v) for k, v in item.items() if v is not None},
        )
    records = [stream_record(item, next(seq)) for item in items]
    response = usage_handler.handler(lambda_event(records), Context())
    assert response["batchItemFailures"] == []
    usage_handler.use_store(None)


def november(dynamodb: Any, tenant: str = "acme", plan: str = "gold") -> list[dict[str, Any]]:
    """Live and test usage of ``tenant`` on :data:`DAYS` (seeded; the seed is printed)."""
    print(f"statement traffic seed {SEED}")
    rng = random.Random(SEED)
    items = []
    n = 0
    for day in DAYS:
        for _ in range(rng.randint(3, 9)):
            n += 1
            prompt, completion = rng.randint(50, 4000), rng.randint(10, 900)
            items.append(
                usage_item(
                    n,
                    tenant=tenant,
                    key=f"k-{n % 3}",
                    principal=rng.choice((*HOSTILE_PRINCIPALS, "svc")),
                    model=rng.choice(("tollgate-echo", "bedrock:haiku", HOSTILE_MODEL)),
                    plan=plan,
                    ts_ms=T0_MS + (day - 1) * 86_400_000 + n * 60_000,
                    prompt=prompt,
                    completion=completion,
                    cost=2 * prompt + 6 * completion,
                    env="test" if n % 7 == 0 else "live",
                )
            )
    put_and_aggregate(dynamodb, items)
    return items


class Page(HTMLParser):
    """The parts of a rendered page the tests look at: every start tag, the text of each
    table cell by row kind and column, the bars of the charts, all text."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.rows: list[tuple[str, dict[str, str]]] = []  # (tr class or id, {col: text})
        self.bars: list[dict[str, str | None]] = []
        self.text: list[str] = []
        self._row: tuple[str, dict[str, str]] | None = None
        self._col: str | None = None
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "tr" and (a.get("class") == "line" or a.get("id") == "totals"):
            self._row = (a.get("class") or a.get("id") or "", {})
            self.rows.append(self._row)
        elif tag == "td" and self._row is not None:
            self._col = a.get("data-col")
            if self._col:
                self._row[1][self._col] = ""
        elif tag == "rect" and "bar" in (a.get("class") or ""):
            self.bars.append(a)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._col = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._row is not None and self._col:
            self._row[1][self._col] += data

    def lines(self) -> list[dict[str, str]]:
        return [cells for kind, cells in self.rows if kind == "line"]

    def totals(self) -> dict[str, str]:
        (cells,) = [cells for kind, cells in self.rows if kind == "totals"]
        return cells


def live(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for i in items if i["environment"] == "live"]
