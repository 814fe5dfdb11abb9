"""``tollgate finetune create``: register a fine-tuning job record for a tenant.

Registered in :mod:`tollgate.cli` as the ``finetune`` group. Bad input exits 2 with one
line on stderr and writes nothing; ``--json`` prints ``id``, ``tenant_id``, ``base_model``,
``status`` (and ``suffix``, ``created_at``, ``fine_tuned_model``).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from functions.finetune.service import FineTuneInputError, create_job
from tollgate.cli.context import connect

app = typer.Typer(help="Fine-tuning job records (tenant-scoped).", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Fine-tuning job records (tenant-scoped)."""


def _wants_json(ctx: typer.Context) -> bool:
    root = ctx.find_root()
    obj = root.obj
    if obj is not None and getattr(obj, "json", None) is not None:
        return bool(obj.json)
    return bool(root.params.get("json_out") or root.params.get("json"))


@app.command("create")
def create(
    ctx: typer.Context,
    tenant: str = typer.Option(..., "--tenant", metavar="TENANT_ID", help="The tenant."),
    base_model: str = typer.Option(
        ..., "--base-model", metavar="MODEL", help="tollgate-echo or a model of its plan."
    ),
    suffix: str | None = typer.Option(None, "--suffix", metavar="TEXT", help="1-40 chars."),
) -> None:
    """Register a fine-tuning job record (status queued) for a tenant."""
    wants_json = _wants_json(ctx)  # before connect(): a bare group run keeps its own obj
    connect(ctx)
    try:
        job: dict[str, Any] = create_job(tenant, base_model, suffix)
    except FineTuneInputError as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise typer.Exit(2) from None
    if wants_json:
        sys.stdout.write(json.dumps(job, indent=2) + "\n")
    else:
        sys.stdout.write(
            f"Registered fine-tuning job {job['id']} for tenant {job['tenant_id']} "
            f"(base model {job['base_model']}, status {job['status']})\n"
        )
