"""The responder functions' configuration (revoke function, leak webhook), typed.

CDK sets exactly these (plus the ``TOLLGATE_TABLE_*`` variables of the tables they use):

* ``TOLLGATE_EVENT_BUS``: the EventBridge bus for ``tollgate.key.revoked`` (unset: logged);
* ``TOLLGATE_GITHUB_KEYS_URL`` (webhook): where GitHub publishes its secret-scanning
  public keys (default: ``https://api.github.com/meta/public_keys/secret_scanning``);
* ``TOLLGATE_GITHUB_KEYS_TTL_S`` (webhook): how long fetched keys are trusted (3600).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from functions.common.config import TableNames
from functions.respond.events import ENV_EVENT_BUS

ENV_KEYS_URL: Final = "TOLLGATE_GITHUB_KEYS_URL"
ENV_KEYS_TTL: Final = "TOLLGATE_GITHUB_KEYS_TTL_S"
GITHUB_KEYS_URL: Final = "https://api.github.com/meta/public_keys/secret_scanning"


class ResponderSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tables: TableNames = Field(default_factory=TableNames)
    event_bus: str | None = None
    github_keys_url: str = Field(GITHUB_KEYS_URL, pattern=r"^https?://")
    github_keys_ttl_s: float = Field(3600.0, ge=0, le=86_400)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ResponderSettings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {"tables": TableNames.from_env(dict(env))}
        for name, var in (
            ("event_bus", ENV_EVENT_BUS),
            ("github_keys_url", ENV_KEYS_URL),
            ("github_keys_ttl_s", ENV_KEYS_TTL),
        ):
            if env.get(var, "").strip():
                values[name] = env[var].strip()
        return cls.model_validate(values)
