"""``tollgate migrate``: move a 0.1.0 deployment's gate state into the gate table.

Idempotent and resumable (run it again after an interruption), ``--dry-run`` reports what it
would write. What it does and in which order: ``functions/gate/migrate.py``; when to run it
(right after deploying 0.2): docs/deploy.md.
"""

from __future__ import annotations

import sys

import typer

from tollgate.cli.context import emit


def migrate(
    ctx: typer.Context,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Read and report what would be written; write nothing."
    ),
) -> None:
    """Move every tenant's 0.1.0 gate (keys' states and monthly counters) to the gate table."""
    from functions.common.models import GateItem, Key, Plan, Tenant
    from functions.gate.migrate import MigrationConflict
    from functions.gate.migrate import migrate as run

    def progress(line: str) -> None:
        sys.stderr.write(line + "\n")

    try:
        report = run(
            tenants_table=Tenant.Meta.table_name,
            plans_table=Plan.Meta.table_name,
            keys_table=Key.Meta.table_name,
            gate_table=GateItem.Meta.table_name,
            dry_run=dry_run,
            progress=progress,
        ).as_dict()
    except MigrationConflict as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise typer.Exit(1) from None

    def human(console: object, r: dict[str, object]) -> None:
        verb = "would migrate" if r["dry_run"] else "migrated"
        sys.stdout.write(
            f"{verb} {len(r['migrated'])} tenant(s) of {r['tenants']} "  # type: ignore[arg-type]
            f"({r['keys_written']} key items written, {r['keys_present']} already there); "
            f"{len(r['already_migrated'])} already migrated\n"  # type: ignore[arg-type]
        )

    emit(ctx, report, human)
