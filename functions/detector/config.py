"""The detector functions' configuration: every environment variable they read, typed.

CDK sets exactly these (plus the ``TOLLGATE_TABLE_*`` variables of the tables they use):

* ``TOLLGATE_EVENT_BUS``: the EventBridge bus for ``tollgate.key.suspended``,
  ``tollgate.key.spike_alert`` and ``tollgate.source.stuffing`` (unset: events are logged);
* ``TOLLGATE_DETECTOR_HOLD_MINUTES``: after a human reinstates a key, the detector does not
  suspend it again for this long (default 720: twelve hours);
* ``TOLLGATE_DETECTOR_PLAN_TTL_S``: how long a plan's spike settings are cached (60).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from functions.common.config import TableNames
from functions.respond.events import ENV_EVENT_BUS

ENV_HOLD: Final = "TOLLGATE_DETECTOR_HOLD_MINUTES"
ENV_PLAN_TTL: Final = "TOLLGATE_DETECTOR_PLAN_TTL_S"


class DetectorSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tables: TableNames = Field(default_factory=TableNames)
    event_bus: str | None = None
    hold_minutes: int = Field(720, ge=0, le=30 * 1440)
    plan_ttl_s: float = Field(60.0, ge=0, le=3600)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DetectorSettings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {"tables": TableNames.from_env(dict(env))}
        for name, var in (
            ("event_bus", ENV_EVENT_BUS),
            ("hold_minutes", ENV_HOLD),
            ("plan_ttl_s", ENV_PLAN_TTL),
        ):
            if env.get(var, "").strip():
                values[name] = env[var].strip()
        return cls.model_validate(values)
