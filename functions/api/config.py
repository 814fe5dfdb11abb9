"""The managed API function's configuration: every environment variable it reads, typed.

CDK sets exactly these on the function (plus the table variables of
:mod:`functions.common.config`):

* ``TOLLGATE_UPSTREAM_SECRET_ARN``: Secrets Manager secret ``{"base_url", "api_key"}`` of the
  OpenAI-compatible upstream (optional; ``upstream:*`` models answer 503 without it);
* ``TOLLGATE_BEDROCK_REGION``: region of Bedrock's runtime (default: the function's region);
* ``TOLLGATE_DEFAULT_MAX_TOKENS`` (1024), ``TOLLGATE_MAX_TOKENS_CAP`` (16384);
* ``TOLLGATE_MODEL_TIMEOUT_S`` (870): the longest a model call may run, streamed or not.
  The inference routes use API Gateway's streaming integration (up to 15 minutes; the
  function's timeout is 900 s) and the call keeps :data:`functions.api.handler.SAFETY_MARGIN_S`
  to write its usage event and settle; buffered routes stay under API Gateway's 29 s;
* ``TOLLGATE_ECHO_CHUNK_DELAY_MS`` (0): tollgate-echo waits this long before each streamed
  chunk (one per word), so a local stream looks like a model's;
* ``TOLLGATE_PRICE_TTL_S`` (60): how long a container keeps the operator's prices
  (functions/api/prices.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from functions.common.config import TableNames

ENV_UPSTREAM_SECRET = "TOLLGATE_UPSTREAM_SECRET_ARN"  # noqa: S105 - a variable name
ENV_BEDROCK_REGION = "TOLLGATE_BEDROCK_REGION"
ENV_DEFAULT_MAX_TOKENS = "TOLLGATE_DEFAULT_MAX_TOKENS"
ENV_MAX_TOKENS_CAP = "TOLLGATE_MAX_TOKENS_CAP"
ENV_MODEL_TIMEOUT = "TOLLGATE_MODEL_TIMEOUT_S"
ENV_ECHO_CHUNK_DELAY = "TOLLGATE_ECHO_CHUNK_DELAY_MS"
ENV_PRICE_TTL = "TOLLGATE_PRICE_TTL_S"


class ApiSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tables: TableNames = Field(default_factory=TableNames)
    upstream_secret_arn: str | None = None
    bedrock_region: str | None = None
    default_max_tokens: int = Field(default=1024, ge=1)
    max_tokens_cap: int = Field(default=16384, ge=1)
    model_timeout_s: float = Field(default=870.0, gt=0, le=900)
    echo_chunk_delay_ms: int = Field(default=0, ge=0, le=60_000)
    secret_ttl_s: float = Field(default=300.0, ge=0)
    price_ttl_s: float = Field(default=60.0, ge=0, le=3600)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {"tables": TableNames.from_env(dict(env))}
        for field, name in (
            ("upstream_secret_arn", ENV_UPSTREAM_SECRET),
            ("bedrock_region", ENV_BEDROCK_REGION),
            ("default_max_tokens", ENV_DEFAULT_MAX_TOKENS),
            ("max_tokens_cap", ENV_MAX_TOKENS_CAP),
            ("model_timeout_s", ENV_MODEL_TIMEOUT),
            ("echo_chunk_delay_ms", ENV_ECHO_CHUNK_DELAY),
            ("price_ttl_s", ENV_PRICE_TTL),
        ):
            if env.get(name):
                values[field] = env[name]
        settings = cls.model_validate(values)
        if settings.default_max_tokens > settings.max_tokens_cap:
            raise ValueError(f"{ENV_DEFAULT_MAX_TOKENS} must not exceed {ENV_MAX_TOKENS_CAP}")
        return settings
