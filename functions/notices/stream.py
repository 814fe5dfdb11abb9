"""The delivery function's event source mapping (the notices table's stream), read by CDK
(infra/notices.py) and by the local stream pollers (tollgate/local/pollers.py).

* Only notices waiting for delivery: INSERT (a new notice) or MODIFY (a redrive) whose new
  image has ``status = pending``. The webhook item (it holds the signing secret) and the
  delivery's own updates never reach the function.
* 10 records or 1 s: notices are few; a short window keeps them prompt.
* Parallelization 4: delivery order does not matter, and one slow receiver should not hold
  up other tenants' notices for long (records of a batch are also delivered concurrently).
* 5 retries with bisection, then the on-failure queue: a record fails only when the notices
  table itself fails (a receiver's failure is recorded on the notice, not retried here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from functions.common.streams import StreamSettings

DELIVERY_HANDLER: Final = "functions.notices.handler.handler"


@dataclass(frozen=True)
class PendingNotices(StreamSettings):
    """StreamSettings whose filter also looks at the new image's ``status``."""

    statuses: tuple[str, ...] = ("pending",)

    def filter_pattern(self) -> dict[str, Any]:
        return {
            **super().filter_pattern(),
            "dynamodb": {"NewImage": {"status": {"S": list(self.statuses)}}},
        }


DELIVERY_STREAM: Final = PendingNotices(
    batch_size=10,
    batching_window_s=1,
    max_retries=5,
    bisect_on_error=True,
    parallelization=4,
    max_record_age_s=86_400,
    event_names=("INSERT", "MODIFY"),
)
