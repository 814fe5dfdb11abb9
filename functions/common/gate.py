"""The gate entry: what can change about a key, kept on its tenant's item.

``Tenant.gate[key_id]`` is a small map with one-letter names (every request rewrites the
tenant item, and DynamoDB bills a write by item size):

===== ================================================================================
``s`` status: ``active`` | ``suspended`` | ``revoked``
``w`` the UTC minute (epoch seconds // 60) that ``c`` counts in
``c`` requests admitted in minute ``w``
``n`` serial of the key's current secret; serial ``n - 1`` stays valid while ``g`` > now
``g`` epoch seconds until which the previous secret (serial ``n - 1``) is still accepted
``p`` parent key id (delegated keys only); the parent's entry must be active too
``b`` token budget (delegated keys only, optional); ``u`` tokens used or reserved against it
===== ================================================================================

Admin operations change an entry with one ``UpdateItem`` on the tenant item (that is the
enforcement point, atomic), then bring the durable ``Key`` record in line, then audit.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Final

STATUS: Final = "s"
WINDOW: Final = "w"
COUNT: Final = "c"
SERIAL: Final = "n"
GRACE: Final = "g"
PARENT: Final = "p"
BUDGET: Final = "b"
USED: Final = "u"


def new_entry(
    *, serial: int = 1, parent_key_id: str | None = None, token_budget: int | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {STATUS: "active", WINDOW: 0, COUNT: 0, SERIAL: serial, GRACE: 0}
    if parent_key_id:
        entry[PARENT] = parent_key_id
    if token_budget is not None:
        entry[BUDGET] = int(token_budget)
        entry[USED] = 0
    return entry


def minute_window(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // 60)


def month_window(now: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if now is None else now, UTC).strftime("%Y-%m")


def seconds_to_next_minute(now: float) -> int:
    return max(1, 60 - int(now) % 60)


def seconds_to_next_month(now: float) -> int:
    t = datetime.fromtimestamp(now, UTC)
    nxt = datetime(t.year + (t.month == 12), t.month % 12 + 1, 1, tzinfo=UTC)
    return max(1, int(nxt.timestamp() - now))
