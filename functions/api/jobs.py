"""``GET /v1/fine_tuning/jobs`` and ``GET /v1/fine_tuning/jobs/{id}``: tenant-scoped reads.

Jobs are keyed ``(tenant_id, job_id)``, and every read uses the caller's tenant id as the
partition key, so another tenant's job cannot be read: its id answers 404 exactly like an
id that never existed (same message, no data). Both reads write a usage event (reading a
job is an action responders may need to see).
"""

from __future__ import annotations

import re
from typing import Any, Final

from functions.api.caller import Caller
from functions.api.errors import InvalidRequest, JobNotFound
from functions.api.services import Services
from functions.api.usage import UsageRecorder

JOB_ID: Final = re.compile(r"^ftjob-[A-Za-z0-9]{1,64}$")
DEFAULT_LIMIT: Final = 20
MAX_LIMIT: Final = 100


def job_object(item: dict[str, Any]) -> dict[str, Any]:
    """A job record as OpenAI's ``fine_tuning.job`` object."""
    return {
        "object": "fine_tuning.job",
        "id": item["job_id"],
        "model": item.get("base_model"),
        "created_at": int(item.get("created_at") or 0),
        "finished_at": None,
        "fine_tuned_model": item.get("fine_tuned_model"),
        "organization_id": item["tenant_id"],
        "result_files": [],
        "status": item.get("status", "queued"),
        "validation_file": None,
        "training_file": None,
        "hyperparameters": {
            "n_epochs": "auto",
            "batch_size": "auto",
            "learning_rate_multiplier": "auto",
        },
        "trained_tokens": None,
        "error": None,
        "user_provided_suffix": item.get("suffix"),
        "seed": 0,
        "estimated_finish": None,
        "integrations": [],
        "metadata": None,
    }


def page_params(query: dict[str, str] | None) -> tuple[int, str | None]:
    """``limit`` and ``after`` from the query string (400 if malformed: nothing recorded)."""
    query = query or {}
    raw = query.get("limit")
    limit = DEFAULT_LIMIT
    if raw is not None:
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
            raise InvalidRequest(f"limit must be an integer from 1 to {MAX_LIMIT}.", param="limit")
        limit = int(raw)
    after = query.get("after") or None
    if after is not None and not JOB_ID.match(after):
        raise InvalidRequest("after must be a fine-tuning job id.", param="after")
    return limit, after


def list_jobs(
    services: Services, caller: Caller, query: dict[str, str] | None, operation: str
) -> dict[str, Any]:
    limit, after = page_params(query)
    with UsageRecorder(services.store, caller, operation) as usage:
        page = services.store.list_jobs(caller.tenant_id, limit, after)
        usage.ok()
    return {
        "object": "list",
        "data": [job_object(i) for i in page.items],
        "has_more": page.has_more,
    }


def get_job(services: Services, caller: Caller, job_id: str, operation: str) -> dict[str, Any]:
    with UsageRecorder(services.store, caller, operation) as usage:
        valid = JOB_ID.match(job_id) is not None
        item = services.store.get_job(caller.tenant_id, job_id) if valid else None
        if item is None or item.get("tenant_id") != caller.tenant_id:
            shown = f" '{job_id}'" if valid else ""
            raise JobNotFound(f"No fine-tuning job with id{shown}.", param="id")
        usage.ok()
    return job_object(item)
