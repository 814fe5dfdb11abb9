"""Register a fine-tuning job record for a tenant (the operator side of issue 4).

Tollgate does not train models: a job record is what an operator registers so that the
tenant's keys can list and retrieve it through ``GET /v1/fine_tuning/jobs[/{id}]``. The base
model must be one the tenant may use (tollgate-echo, or a model its plan lists). Job ids sort
by creation time (``ftjob-`` + 9 base62 characters of epoch milliseconds + 12 random), so
the API lists a tenant's jobs newest first with one query.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any, Final

from functions.common.keyformat import ALPHABET
from functions.common.models import FineTuneJob, Plan, Tenant

ECHO_MODEL: Final = "tollgate-echo"
SUFFIX: Final = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
TENANT_ID: Final = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MODEL_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$")


class FineTuneInputError(ValueError):
    """Bad input: nothing was written (the CLI exits 2)."""


def _b62(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 62)
        out.append(ALPHABET[r])
    return "".join(reversed(out))


def new_job_id(now: float | None = None) -> str:
    ms = int((time.time() if now is None else now) * 1000)
    return "ftjob-" + _b62(ms, 9) + "".join(secrets.choice(ALPHABET) for _ in range(12))


def job_view(job: FineTuneJob) -> dict[str, Any]:
    return {
        "id": job.job_id,
        "tenant_id": job.tenant_id,
        "base_model": job.base_model,
        "status": job.status,
        "suffix": job.suffix,
        "created_at": int(job.created_at),
        "fine_tuned_model": job.fine_tuned_model,
    }


def create_job(
    tenant_id: str, base_model: str, suffix: str | None = None, *, now: float | None = None
) -> dict[str, Any]:
    """Register a ``queued`` job for ``tenant_id``; :class:`FineTuneInputError` on bad input."""
    if not TENANT_ID.match(tenant_id or ""):
        raise FineTuneInputError("tenant id must be 1-64 of A-Z a-z 0-9 _ . -")
    if not MODEL_ID.match(base_model or ""):
        raise FineTuneInputError("base model must be a model id such as tollgate-echo")
    if suffix is not None and not SUFFIX.match(suffix):
        raise FineTuneInputError("suffix must be 1-40 of A-Z a-z 0-9 _ -")
    try:
        tenant = Tenant.get(tenant_id, consistent_read=True)
    except Tenant.DoesNotExist:
        raise FineTuneInputError(f"no tenant {tenant_id!r}") from None
    if base_model != ECHO_MODEL:
        try:
            plan = Plan.get(tenant.plan, consistent_read=True)
        except Plan.DoesNotExist:
            raise FineTuneInputError(f"tenant {tenant_id!r} has no plan {tenant.plan!r}") from None
        if base_model not in (plan.models or []):
            raise FineTuneInputError(
                f"base model {base_model!r} is not in plan {plan.name!r} of tenant {tenant_id!r}"
            )
    at = time.time() if now is None else now
    job = FineTuneJob(
        tenant_id=tenant_id,
        job_id=new_job_id(at),
        base_model=base_model,
        suffix=suffix,
        status="queued",
        created_at=int(at),
        live=True,
    )
    job.save(condition=FineTuneJob.job_id.does_not_exist())
    return job_view(job)
