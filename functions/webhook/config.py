"""The leak webhook's own settings, beside the responders' (``functions/respond/config.py``:
the event bus, ``TOLLGATE_GITHUB_KEYS_URL`` and ``TOLLGATE_GITHUB_KEYS_TTL_S``):

* ``TOLLGATE_GITHUB_TOKEN_SECRET``: a Secrets Manager secret (name or ARN) holding a GitHub
  token, either as the plain secret string or as JSON ``{"token": "..."}``; when set and not
  empty, the key list is fetched authenticated (GitHub's rate limit per token, not per
  address). Unset or empty: unauthenticated. The token is read on the first fetch and kept
  for the container's life; it is never logged;
* ``TOLLGATE_WEBHOOK_REPLAY_TTL_S``: how long a processed report is remembered, so that the
  same signed report sent again is acknowledged without revoking or auditing again (default
  7 days; ``functions/webhook/replays.py``).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from functions.common.observability import MetricUnit, logger, metrics

ENV_TOKEN_SECRET: Final = "TOLLGATE_GITHUB_TOKEN_SECRET"  # noqa: S105 - a variable name
ENV_REPLAY_TTL: Final = "TOLLGATE_WEBHOOK_REPLAY_TTL_S"


class WebhookSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    github_token_secret: str | None = Field(None, max_length=2048)
    replay_ttl_s: int = Field(7 * 86_400, ge=60, le=90 * 86_400)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebhookSettings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name, var in (
            ("github_token_secret", ENV_TOKEN_SECRET),
            ("replay_ttl_s", ENV_REPLAY_TTL),
        ):
            if env.get(var, "").strip():
                values[name] = env[var].strip()
        return cls.model_validate(values)


def token_from_secret(secret_id: str) -> Callable[[], str | None]:
    """A function giving the GitHub token kept in Secrets Manager (read once; a failed read
    is logged without the value and tried again at the next fetch)."""
    cached: list[str | None] = []
    lock = threading.Lock()

    def read() -> str | None:
        with lock:
            if cached:
                return cached[0]
            try:
                import botocore.session

                client = botocore.session.get_session().create_client("secretsmanager")
                raw = str(client.get_secret_value(SecretId=secret_id)["SecretString"])
            except Exception as exc:
                logger.error(
                    "GitHub token secret not readable; fetching the key list without it",
                    extra={"error": type(exc).__name__},
                )
                metrics.add_metric(name="GitHubTokenUnreadable", unit=MetricUnit.Count, value=1)
                return None
            cached.append(parse_token(raw))
            return cached[0]

    return read


def parse_token(raw: str) -> str | None:
    """The token in a secret string: the string itself, or JSON ``{"token": ...}``."""
    text = raw.strip()
    if text.startswith("{"):
        try:
            data: Any = json.loads(text)
        except ValueError:
            return None
        value = data.get("token") if isinstance(data, dict) else None
        text = value.strip() if isinstance(value, str) else ""
    if not text or any(c.isspace() for c in text) or len(text) > 1024:
        return None
    return text
