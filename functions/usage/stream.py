"""The usage aggregator's event source mapping, read by CDK (infra/usage.py) and by the
local stream pollers (tollgate/local/pollers.py): one place for its numbers.

* INSERT only: a usage event is written once (conditional put) and never changed.
* 1,000 records or 5 s, whichever comes first: the bigger the batch, the fewer rollup
  writes per event (writes grow with the distinct items a batch touches, not with events);
  5 s bounds how stale a rollup is.
* 10 retries with bisection, then the on-failure queue: a poison record is isolated
  (bisection) and parked without blocking the shard for long.
* Parallelization 1: one batch per shard in flight, in shard order (the watermarks need it).
* A tumbling window, only so that Lambda puts the shard id into each event (stream records
  do not carry it); the handler keeps no state in it.
* Records at most 24 h old: the stream's own retention, said explicitly because the
  pruning of old marks (functions/usage/aggregator.py) relies on it.
"""

from __future__ import annotations

from typing import Final

from functions.common.streams import StreamSettings

AGGREGATOR_HANDLER: Final = "functions.usage.handler.handler"

AGGREGATOR_STREAM: Final = StreamSettings(
    batch_size=1000,
    batching_window_s=5,
    max_retries=10,
    bisect_on_error=True,
    parallelization=1,
    tumbling_window_s=900,
    max_record_age_s=86_400,
    event_names=("INSERT",),
)
