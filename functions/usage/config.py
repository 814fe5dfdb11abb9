"""The usage aggregator's configuration: every environment variable it reads, typed.

CDK sets exactly these (plus ``TOLLGATE_TABLE_ROLLUPS`` of functions.common.config):

* ``TOLLGATE_ROLLUP_WRITERS``: concurrent rollup writes per batch (default 8; the writes of
  a batch touch distinct items, so they may run in parallel).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from functions.common.config import TableNames

ENV_WRITERS = "TOLLGATE_ROLLUP_WRITERS"


class UsageSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tables: TableNames = Field(default_factory=TableNames)
    writers: int = Field(8, ge=1, le=64)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> UsageSettings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {"tables": TableNames.from_env(dict(env))}
        if env.get(ENV_WRITERS):
            values["writers"] = env[ENV_WRITERS]
        return cls.model_validate(values)
