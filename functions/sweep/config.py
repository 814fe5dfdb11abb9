"""The sweep's configuration: every environment variable it reads, typed.

* ``TOLLGATE_SWEEP_AFTER_S``: a marker is orphaned once its minute ended this long ago
  (default 960: the Api function's 15 minute timeout plus a minute);
* ``TOLLGATE_SWEEP_LOOKBACK_MIN``: on the very first run (no cursor yet), how many minutes
  back to start (default 60);
* ``TOLLGATE_SWEEP_MAX_MINUTES``: the most minutes one run reads (default 240: 16 Queries
  each); a sweep that is behind catches up over several runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from functions.common.config import TableNames

ENV_AFTER: Final = "TOLLGATE_SWEEP_AFTER_S"
ENV_LOOKBACK: Final = "TOLLGATE_SWEEP_LOOKBACK_MIN"
ENV_MAX_MINUTES: Final = "TOLLGATE_SWEEP_MAX_MINUTES"
API_TIMEOUT_S: Final = 900  # infra/api.py: the Api function's timeout


class SweepSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tables: TableNames = Field(default_factory=TableNames)
    after_s: int = Field(default=API_TIMEOUT_S + 60, ge=0)
    lookback_minutes: int = Field(default=60, ge=1)
    max_minutes: int = Field(default=240, ge=1)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SweepSettings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {"tables": TableNames.from_env(dict(env))}
        for name, field in (
            (ENV_AFTER, "after_s"),
            (ENV_LOOKBACK, "lookback_minutes"),
            (ENV_MAX_MINUTES, "max_minutes"),
        ):
            if env.get(name):
                values[field] = env[name]
        return cls.model_validate(values)
