"""The usage domain, pure: what a usage event adds to which rollup item.

Nothing here knows Lambda, streams or DynamoDB; the aggregator, the reconciliation, the
statements and the tests all count with these functions.

Rollup items (``models.Rollup``): partition ``tenant_id``, sort key
``<granularity>#<period>#<dimension>#<value>``; granularities ``hour`` (``2026-11-05T13``),
``day`` (``2026-11-05``) and ``month`` (``2026-11``), all UTC, from the event's ``ts``.

Dimensions, and which events they count:

=============  ==========================  =============================================
dimension      value                       events counted
=============  ==========================  =============================================
``all``        ``-``                       live (billable) events of the tenant
``principal``  the principal               live events of that principal
``model``      the model                   live events on that model
``key``        the key id                  every event of the key (a key has one
                                           environment, so a test key's items hold only
                                           test usage: the exposure report reads them)
``test``       ``-``                       the tenant's test-environment events
``line``       model|principal|plan        live events; month granularity only: the line
                                           items of a statement (percent-encoded parts)
=============  ==========================  =============================================

**Invoice integrity** (issue 14): a usage event's ``model`` reaches the rollups only if it is
a name the route table knows (functions/pricing/catalogue.py ``routable``), a built-in tool
(``tool:<name>``) or ``-`` (no model); anything else a caller may have sent is folded into
the one model ``unknown`` (:func:`billable_model`), for every dimension and the statement's
line. The API writes ``unknown`` at the source already for a refused request
(functions/api/chat.py); this is the second fence, for events written by any other code.
Cached and reasoning tokens are summed as ``cached_tokens`` / ``reasoning_tokens`` (parts of
the prompt and completion tokens, never added to them again).

Test-environment usage never reaches ``all``, ``principal``, ``model`` or ``line``, so no
statement or billable total can include it (docs/design.md invariant 5); it stays visible per
key and as the tenant's ``test`` total.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from urllib.parse import quote, unquote

from functions.pricing.catalogue import UNKNOWN, routable

GRANULARITIES: Final = ("hour", "day", "month")
BILLABLE_ENVIRONMENT: Final = "live"
TOTAL: Final = "-"
# Dimensions a caller may group by, and the tenant-wide ones that hold only live usage.
DIMENSIONS: Final = ("all", "key", "principal", "model", "test", "line")
BILLABLE_DIMENSIONS: Final = frozenset({"all", "principal", "model", "line"})

_PERIOD_FORMATS: Final = {"hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d", "month": "%Y-%m"}


# -- invoice integrity (issue 14) ------------------------------------------------------
# Kept equal to functions/api/tools.py TOOLS (a unit test checks): the usage function does
# not import the API.
TOOL_NAMES: Final = frozenset({"calculator", "token_count", "utc_now"})


def billable_model(model: str) -> str:
    """``model`` if the catalogue, the route table or the tool list knows it, else
    ``unknown``: a caller's made-up name never becomes an invoice line of its own."""
    if model in ("-", UNKNOWN) or routable(model):
        return model
    if model.startswith("tool:") and model[5:] in TOOL_NAMES:
        return model
    return UNKNOWN


class MalformedEvent(ValueError):
    """A usage event image that cannot be counted (a missing or invalid field)."""


@dataclass(frozen=True, slots=True)
class UsageFact:
    """What the aggregation needs from one usage event (``models.UsageEvent``)."""

    request_id: str
    tenant_id: str
    key_id: str
    principal: str
    environment: str
    model: str
    plan: str
    ts_ms: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_micros: int = 0
    error: bool = False
    estimated: bool = False  # tokens at the reservation's upper bound (functions/api/usage.py)
    cached_tokens: int = 0  # pricing (issue 14): part of prompt_tokens
    reasoning_tokens: int = 0  # part of completion_tokens

    @property
    def billable(self) -> bool:
        return self.environment == BILLABLE_ENVIRONMENT

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> UsageFact:
        """From a usage event as plain values (a stream image or a query result)."""

        def text(name: str, default: str | None = None) -> str:
            value = item.get(name, default)
            if value is None or not isinstance(value, str) or (default is None and not value):
                raise MalformedEvent(f"usage event without a valid {name}")
            return value

        def count(name: str, default: int | None = 0) -> int:
            value = item.get(name, default)
            if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
                raise MalformedEvent(f"usage event with an invalid {name}")
            try:
                number = Decimal(str(value))
            except InvalidOperation:
                raise MalformedEvent(f"usage event with an invalid {name}") from None
            if not number.is_finite() or number != number.to_integral_value() or number < 0:
                raise MalformedEvent(f"usage event with an invalid {name}")
            return int(number)

        return cls(
            request_id=text("request_id"),
            tenant_id=text("tenant_id"),
            key_id=text("key_id"),
            principal=text("principal", "-") or "-",
            environment=text("environment"),
            model=billable_model(text("model", "-") or "-"),
            plan=text("plan", "-") or "-",
            ts_ms=count("ts", None),
            prompt_tokens=count("prompt_tokens"),
            completion_tokens=count("completion_tokens"),
            cost_micros=count("cost_micros"),
            error=item.get("status", "ok") != "ok",
            estimated=item.get("estimated") is True,
            cached_tokens=count("cached_tokens"),
            reasoning_tokens=count("reasoning_tokens"),
        )


@dataclass(slots=True)
class Counters:
    """The measures of a rollup item (all integers; cost in micro-dollars)."""

    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_micros: int = 0
    estimated: int = 0  # requests whose tokens are an upper bound, not the provider's count
    cached_tokens: int = 0  # pricing (issue 14): part of prompt_tokens
    reasoning_tokens: int = 0  # part of completion_tokens

    @classmethod
    def of(cls, fact: UsageFact) -> Counters:
        return cls(
            requests=1,
            errors=1 if fact.error else 0,
            prompt_tokens=fact.prompt_tokens,
            completion_tokens=fact.completion_tokens,
            cost_micros=fact.cost_micros,
            estimated=1 if fact.estimated else 0,
            cached_tokens=fact.cached_tokens,
            reasoning_tokens=fact.reasoning_tokens,
        )

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Counters:
        return cls(**{name: int(item.get(name) or 0) for name in MEASURES})

    def add(self, other: Counters) -> Counters:
        for name in MEASURES:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in MEASURES}

    def __bool__(self) -> bool:
        return any(getattr(self, name) for name in MEASURES)


MEASURES: Final = tuple(f.name for f in fields(Counters))


@dataclass(frozen=True, slots=True, order=True)
class RollupKey:
    tenant_id: str
    sk: str

    @property
    def parts(self) -> tuple[str, str, str, str]:
        """(granularity, period, dimension, value)."""
        granularity, period, dimension, value = self.sk.split("#", 3)
        return granularity, period, dimension, value


def sort_key(granularity: str, period: str, dimension: str, value: str) -> str:
    return f"{granularity}#{period}#{dimension}#{value}"


def periods(ts_ms: int) -> dict[str, str]:
    """The UTC hour, day and month of an epoch-milliseconds time."""
    return dict(_hour_periods(ts_ms // 3_600_000))


@functools.lru_cache(maxsize=4096)
def _hour_periods(hour: int) -> dict[str, str]:
    """Periods of an hour since the epoch (cached: a batch spans few hours). Read-only."""
    t = time.gmtime(hour * 3600)
    return {g: time.strftime(fmt, t) for g, fmt in _PERIOD_FORMATS.items()}


def line_value(model: str, principal: str, plan: str) -> str:
    """The value of a statement line item: its parts percent-encoded, joined with ``|``."""
    return "|".join(quote(part, safe="") for part in (model, principal, plan))


def parse_line_value(value: str) -> tuple[str, str, str]:
    model, principal, plan = (unquote(part) for part in value.split("|", 2))
    return model, principal, plan


def rollup_keys(fact: UsageFact) -> list[RollupKey]:
    """Every rollup item one event adds to (see the module docstring)."""
    at = _hour_periods(fact.ts_ms // 3_600_000)
    dims: list[tuple[str, str]] = [("key", fact.key_id)]
    if fact.billable:
        dims += [("all", TOTAL), ("principal", fact.principal), ("model", fact.model)]
    else:
        dims.append(("test", TOTAL))
    keys = [
        RollupKey(fact.tenant_id, sort_key(g, at[g], dim, value))
        for g in GRANULARITIES
        for dim, value in dims
    ]
    if fact.billable:
        line = line_value(fact.model, fact.principal, fact.plan)
        keys.append(RollupKey(fact.tenant_id, sort_key("month", at["month"], "line", line)))
    return keys


def aggregate(facts: Iterable[UsageFact]) -> dict[RollupKey, Counters]:
    """The rollups a set of events adds up to (each event counted once)."""
    out: dict[RollupKey, Counters] = {}
    for fact in facts:
        delta = Counters.of(fact)
        for key in rollup_keys(fact):
            out.setdefault(key, Counters()).add(delta)
    return out


# -- periods given by a user -------------------------------------------------------------


def granularity_of(period: str) -> str:
    """``2026-11`` -> month, ``2026-11-05`` -> day, ``2026-11-05T13`` -> hour."""
    for granularity in ("month", "day", "hour"):
        try:
            time.strptime(period, _PERIOD_FORMATS[granularity])
        except ValueError:
            continue
        return granularity
    raise ValueError(f"period must be YYYY-MM, YYYY-MM-DD or YYYY-MM-DDTHH, not {period!r}")


def period_bounds_ms(period: str) -> tuple[int, int]:
    """[start, end) of a period in epoch milliseconds (UTC)."""
    import calendar

    granularity = granularity_of(period)
    t = time.strptime(period, _PERIOD_FORMATS[granularity])
    start = calendar.timegm(t)
    if granularity == "hour":
        end = start + 3600
    elif granularity == "day":
        end = start + 86400
    else:
        year, month = t.tm_year + (t.tm_mon == 12), t.tm_mon % 12 + 1
        end = calendar.timegm((year, month, 1, 0, 0, 0, 0, 0, 0))
    return start * 1000, end * 1000


def finer_or_equal(granularity: str) -> tuple[str, ...]:
    """The granularities whose items lie wholly inside a period of ``granularity``."""
    return GRANULARITIES[: GRANULARITIES.index(granularity) + 1]


def current_period(granularity: str, now_s: float | None = None) -> str:
    return periods(int((time.time() if now_s is None else now_s) * 1000))[granularity]


def previous_month(now_s: float | None = None) -> str:
    t = time.gmtime(time.time() if now_s is None else now_s)
    year, month = (t.tm_year - 1, 12) if t.tm_mon == 1 else (t.tm_year, t.tm_mon - 1)
    return f"{year:04d}-{month:02d}"


def usd(micros: int) -> str:
    """Integer micro-dollars as a decimal string with 6 places (``1234`` -> ``0.001234``)."""
    return str((Decimal(micros) / Decimal(1_000_000)).quantize(Decimal("0.000001")))


def per_1k_usd(micros_per_1k: int) -> str:
    """A unit price (micro-dollars per 1,000 tokens) as USD per 1,000 tokens."""
    return usd(micros_per_1k)
