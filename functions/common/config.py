"""Typed configuration read from the environment, in one place.

Every table name a function or the CLI uses comes from ``TOLLGATE_TABLE_<NAME>``; CDK sets
exactly those variables on each function (``infra/`` reads :data:`TABLE_ENV` to do so), and
the local stack and tests use the defaults ``tollgate-<name>``. No table name is written twice.
"""

from __future__ import annotations

import os
from typing import Final

from pydantic import BaseModel, ConfigDict

TABLE_KINDS: Final = (
    "plans",
    "tenants",
    "keys",
    "secrets",
    "audit",
    "usage",
    "rollups",
    "jobs",
    "detector",
    "gate",
    "trust",
    "notices",
    # -- billing export (issue 14 item 5): customer mapping and export ledger --
    "billing",
)


def table_env(kind: str) -> str:
    """The environment variable that names the table of ``kind``."""
    return f"TOLLGATE_TABLE_{kind.upper()}"


TABLE_ENV: Final = {kind: table_env(kind) for kind in TABLE_KINDS}


class TableNames(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    plans: str = "tollgate-plans"
    tenants: str = "tollgate-tenants"
    keys: str = "tollgate-keys"
    secrets: str = "tollgate-secrets"
    audit: str = "tollgate-audit"
    usage: str = "tollgate-usage"
    rollups: str = "tollgate-rollups"
    jobs: str = "tollgate-jobs"
    detector: str = "tollgate-detector"
    gate: str = "tollgate-gate"
    trust: str = "tollgate-trust"
    notices: str = "tollgate-notices"
    billing: str = "tollgate-billing"  # billing export: customers and ledger

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> TableNames:
        env = os.environ if environ is None else environ
        return cls(**{k: env[v] for k, v in TABLE_ENV.items() if env.get(v)})

    @classmethod
    def with_prefix(cls, prefix: str) -> TableNames:
        return cls(**{k: f"{prefix}-{k}" for k in TABLE_KINDS})
