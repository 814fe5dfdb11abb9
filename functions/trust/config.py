"""Settings of the token route, read from the environment once per container."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

ENV_ALLOW_HTTP: Final = "TOLLGATE_TRUST_ALLOW_LOOPBACK_HTTP"
ENV_JWKS_TTL: Final = "TOLLGATE_TRUST_JWKS_TTL_S"
ENV_MIN_REFRESH: Final = "TOLLGATE_TRUST_JWKS_MIN_REFRESH_S"

MAX_TOKEN_BYTES: Final = 16 * 1024  # a GitHub Actions token is ~1.5 KB
MAX_FORM_BYTES: Final = 2 * MAX_TOKEN_BYTES
CLOCK_SKEW_S: Final = 60
# Asymmetric algorithms only: never "none", never HS* (a public key is not a shared secret).
ALGORITHMS: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")


@dataclass(frozen=True)
class TrustSettings:
    """``allow_http_loopback``: fetch discovery and keys over http from a loopback issuer
    (``make local`` and the tests set it; the stack never does, so in AWS https only)."""

    allow_http_loopback: bool = False
    jwks_ttl_s: float = 900.0
    min_refresh_s: float = 60.0
    max_backoff_s: float = 900.0
    max_stale_s: float = 86_400.0

    @classmethod
    def from_env(cls) -> TrustSettings:
        env = os.environ
        return cls(
            allow_http_loopback=env.get(ENV_ALLOW_HTTP, "").strip() == "1",
            jwks_ttl_s=float(env.get(ENV_JWKS_TTL) or 900),
            min_refresh_s=float(env.get(ENV_MIN_REFRESH) or 60),
        )
