"""Tollgate's events on its EventBridge bus.

The bus is named by ``TOLLGATE_EVENT_BUS`` (CDK sets it on the functions that publish);
without it (the local stack, tests) an event is only logged. Every event has source
``tollgate`` and one of the detail types below; ``infra/detect.py`` routes them to the
alerts topic. A detail never holds a secret: strings are redacted on the way out.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final

from functions.common.observability import MetricUnit, logger, metrics
from functions.keys.errors import redact

ENV_EVENT_BUS: Final = "TOLLGATE_EVENT_BUS"
SOURCE: Final = "tollgate"
KEY_SUSPENDED: Final = "tollgate.key.suspended"
KEY_SPIKE_ALERT: Final = "tollgate.key.spike_alert"
SOURCE_STUFFING: Final = "tollgate.source.stuffing"
KEY_REVOKED: Final = "tollgate.key.revoked"
DETAIL_TYPES: Final = (KEY_SUSPENDED, KEY_SPIKE_ALERT, SOURCE_STUFFING, KEY_REVOKED)

_client: Any = None
_client_lock = threading.Lock()


class EventNotPublished(Exception):
    """EventBridge refused the event (the caller decides whether to retry)."""


def events_client() -> Any:
    """The process's EventBridge client (built on first use; honours AWS_ENDPOINT_URL*)."""
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                import botocore.config
                import botocore.session

                _client = botocore.session.get_session().create_client(
                    "events",
                    config=botocore.config.Config(
                        retries={"max_attempts": 3, "mode": "standard"},
                        connect_timeout=2,
                        read_timeout=5,
                    ),
                )
    return _client


def reset_client() -> None:
    global _client
    _client = None


def sanitize(value: Any) -> Any:
    """``value`` as JSON-ready data with anything secret-looking redacted."""
    if isinstance(value, Mapping):
        return {str(k): sanitize(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [sanitize(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


class EventPublisher:
    """Puts one event at a time on the bus (or logs it when there is no bus)."""

    def __init__(self, bus: str | None, client: Callable[[], Any] = events_client) -> None:
        self.bus = bus or None
        self._client = client

    @classmethod
    def from_env(cls) -> EventPublisher:
        return cls(os.environ.get(ENV_EVENT_BUS, "").strip() or None)

    def publish(self, detail_type: str, detail: Mapping[str, Any]) -> bool:
        """Publish; True if it went to a bus. Raises :class:`EventNotPublished`."""
        if detail_type not in DETAIL_TYPES:
            raise ValueError(f"unknown detail type {detail_type}")
        body = sanitize(detail)
        if self.bus is None:
            logger.info("event (no bus configured)", extra={"detail_type": detail_type, **body})
            return False
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._client().put_events(
                Entries=[
                    {
                        "Source": SOURCE,
                        "DetailType": detail_type,
                        "Detail": json.dumps(body, separators=(",", ":")),
                        "EventBusName": self.bus,
                    }
                ]
            )
        except (BotoCoreError, ClientError) as exc:
            raise EventNotPublished(f"{detail_type}: {type(exc).__name__}") from None
        if response.get("FailedEntryCount"):
            entry = (response.get("Entries") or [{}])[0]
            raise EventNotPublished(f"{detail_type}: {entry.get('ErrorCode', 'failed')}")
        metrics.add_metric(name="EventPublished", unit=MetricUnit.Count, value=1)
        return True
