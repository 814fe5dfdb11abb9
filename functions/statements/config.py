"""The statements function's configuration: every environment variable it reads, typed.

CDK sets exactly these (plus the table variables of functions.common.config):

* ``TOLLGATE_STATEMENTS_BUCKET``: the encrypted, versioned bucket statements are written to;
* ``TOLLGATE_STATEMENTS_PREFIX``: key prefix (default ``statements/``); objects are
  ``<prefix><YYYY-MM>/<tenant>.json``, ``.csv`` and ``.html``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from functions.common.config import TableNames

ENV_BUCKET = "TOLLGATE_STATEMENTS_BUCKET"
ENV_PREFIX = "TOLLGATE_STATEMENTS_PREFIX"


class StatementsSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tables: TableNames = Field(default_factory=TableNames)
    bucket: str = Field(min_length=3)
    prefix: str = "statements/"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StatementsSettings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {
            "tables": TableNames.from_env(dict(env)),
            "bucket": env.get(ENV_BUCKET, ""),
        }
        if env.get(ENV_PREFIX):
            values["prefix"] = env[ENV_PREFIX]
        return cls.model_validate(values)
