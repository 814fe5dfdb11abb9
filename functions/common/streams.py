"""How a stream function is fed: the one place its event source mapping's numbers live.

A :class:`StreamSettings` is read by both sides that feed a stream handler, so they cannot
drift apart:

* ``infra/`` builds the Lambda event source mapping from it (batch size, batching window,
  retries, bisection, parallelization, tumbling window, filter);
* ``tollgate/local/pollers.py`` polls moto's stream with exactly the same numbers and filter.

The filter is an EventBridge-style pattern over the Lambda record (``{"eventName":
["INSERT"]}``): CDK passes it as the mapping's ``FilterCriteria``, the local poller matches
it with :func:`matches` (exact values only, the subset our patterns use).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StreamSettings:
    """The event source mapping of one stream function."""

    batch_size: int
    batching_window_s: int  # MaximumBatchingWindowInSeconds
    max_retries: int  # MaximumRetryAttempts: then the batch goes to the on-failure destination
    bisect_on_error: bool = True
    # 1: one batch per shard in flight, records in shard order (the watermarks of
    # functions/usage rely on it).
    parallelization: int = 1
    # > 0 makes Lambda put the shard id into every event (DynamoDB stream records do not
    # carry it); the handler must then answer with a ``state``.
    tumbling_window_s: int = 0
    max_record_age_s: int | None = None  # None: until the stream trims the record (24 h)
    event_names: tuple[str, ...] = ("INSERT",)

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 10_000:
            raise ValueError("batch_size must be within 1..10000")
        if not 0 <= self.batching_window_s <= 300:
            raise ValueError("batching_window_s must be within 0..300")
        if not 0 <= self.max_retries <= 10_000:
            raise ValueError("max_retries must be within 0..10000")
        if not 0 <= self.tumbling_window_s <= 900:
            raise ValueError("tumbling_window_s must be within 0..900")
        if not 1 <= self.parallelization <= 10:
            raise ValueError("parallelization must be within 1..10")

    def filter_pattern(self) -> dict[str, Any]:
        """The mapping's filter: only these stream event names reach the handler."""
        return {"eventName": list(self.event_names)}


def matches(pattern: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    """Whether ``record`` passes a filter pattern (exact-value lists and nested objects)."""
    for name, wanted in pattern.items():
        value = record.get(name)
        if isinstance(wanted, Mapping):
            if not isinstance(value, Mapping) or not matches(wanted, value):
                return False
        elif value not in wanted:
            return False
    return True
