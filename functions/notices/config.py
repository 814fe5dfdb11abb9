"""The delivery function's configuration: every environment variable it reads, typed.

* ``TOLLGATE_NOTICE_ATTEMPTS``: POSTs per delivery round before the notice is dead-lettered
  (default 4);
* ``TOLLGATE_NOTICE_TIMEOUT_S``: connect and read timeout of each POST (default 5 s);
* ``TOLLGATE_NOTICE_BACKOFF_S``: the wait before the 2nd attempt, doubled before each later
  one (default 1 s: waits of 1, 2, 4 s);
* plus ``TOLLGATE_TABLE_NOTICES`` (functions.common.config).

The worst round is ``attempts * timeout + backoff * (2**(attempts-1) - 1)`` = 27 s with the
defaults; infra/notices.py sizes the function's timeout from it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from functions.common.config import TableNames

ENV_ATTEMPTS = "TOLLGATE_NOTICE_ATTEMPTS"
ENV_TIMEOUT = "TOLLGATE_NOTICE_TIMEOUT_S"
ENV_BACKOFF = "TOLLGATE_NOTICE_BACKOFF_S"


class NoticeSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tables: TableNames = Field(default_factory=TableNames)
    attempts: int = Field(default=4, ge=1, le=10)
    timeout_s: float = Field(default=5.0, gt=0, le=30)
    backoff_s: float = Field(default=1.0, ge=0, le=60)

    def worst_round_s(self) -> float:
        """The longest one delivery round can take (every attempt timing out)."""
        return self.attempts * self.timeout_s + self.backoff_s * (2 ** (self.attempts - 1) - 1)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> NoticeSettings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {"tables": TableNames.from_env(dict(env))}
        for field, name in (("attempts", ENV_ATTEMPTS), ("timeout_s", ENV_TIMEOUT),
                            ("backoff_s", ENV_BACKOFF)):  # fmt: skip
            if env.get(name):
                values[field] = env[name]
        return cls.model_validate(values)
