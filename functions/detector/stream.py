"""The detector's event sources, read by CDK (infra/detect.py) and the local stream pollers
(tollgate/local/pollers.py): one place for their numbers.

* INSERT only: a usage event is written once and never changed.
* 500 records or 1 s, whichever comes first: detection is about minutes; a second of
  batching keeps the state writes per event low without delaying a suspension noticeably.
* 5 retries with bisection, then the on-failure queue: a poison record is isolated and the
  shard moves on (a detector that blocks its shard detects nothing).
* Parallelization 1: one batch per shard in flight, in shard order (the per-shard marks of
  functions/detector/service.py rely on it).
* A tumbling window, only so that Lambda puts the shard id into each event.
* Records at most 24 h old (the stream's retention; the marks are pruned after 25 h).
"""

from __future__ import annotations

from typing import Final

from functions.common.streams import StreamSettings

DETECTOR_HANDLER: Final = "functions.detector.handler.handler"
REFUSALS_HANDLER: Final = "functions.detector.handler.refusals_handler"

DETECTOR_STREAM: Final = StreamSettings(
    batch_size=500,
    batching_window_s=1,
    max_retries=5,
    bisect_on_error=True,
    parallelization=1,
    tumbling_window_s=900,
    max_record_age_s=86_400,
    event_names=("INSERT",),
)

# The CloudWatch Logs subscription on the API's access logs that feeds refusals_handler:
# only requests the gateway refused (401 from the authorizer, 403 Deny).
REFUSALS_FILTER: Final = '{ $.status = "401" || $.status = "403" }'
