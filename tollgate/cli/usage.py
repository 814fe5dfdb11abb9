"""``tollgate usage``: rollups by period and dimension; ``reconcile``; ``dead-letters``.

``tollgate usage --tenant T`` shows the tenant's billable (live) totals per period;
``--key``, ``--principal`` or ``--model`` one of them, ``--by key|principal|model`` all of
them; ``--env test`` the tenant's test-environment totals (test usage is kept per key and
as a tenant total, never in a billable dimension). ``--granularity hour|day|month``
(default month); ``--period`` narrows to one period or to every finer period inside it
(``--granularity day --period 2026-11``: each day of November).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

from functions.usage.reports import UsageQueryError, reconcile, usage_rows
from tollgate.cli import render
from tollgate.cli.context import (
    BadInput,
    connect,
    current_month,
    emit,
    note,
    service,
    state,
)

app = typer.Typer(
    help="Usage rollups: requests, tokens and cost by period, key, principal and model.",
)

_DIMENSION_FIELD = {"key": "key_id", "principal": "principal", "model": "model"}
DEAD_LETTER_SOURCES = ("usage-aggregator", "spike-detector")  # local pollers' names


def _columns(dimension: str) -> list[tuple[str, str]]:
    cols = [("period", "period")]
    if dimension in _DIMENSION_FIELD:
        cols.append((_DIMENSION_FIELD[dimension], dimension))
    else:
        cols.append(("environment", "env"))
    return [
        *cols,
        ("requests", "requests"),
        ("errors", "errors"),
        ("prompt_tokens", "prompt tokens"),
        ("completion_tokens", "completion tokens"),
        ("cached_tokens", "cached"),
        ("reasoning_tokens", "reasoning"),
        ("estimated", "estimated"),
        ("cost_usd", "cost USD"),
    ]


def _dimension(
    key: str | None, principal: str | None, model: str | None, by: str | None, env: str
) -> tuple[str, str | None]:
    given = (("key", key), ("principal", principal), ("model", model))
    chosen: list[tuple[str, str | None]] = [(d, v) for d, v in given if v]
    if by is not None:
        if by not in _DIMENSION_FIELD:
            raise BadInput("--by must be key, principal or model")
        chosen.append((by, None))
    if len(chosen) > 1:
        raise BadInput("choose one of --key, --principal, --model, --by")
    if env not in ("live", "test"):
        raise BadInput("--env must be live or test")
    if env == "test":
        if chosen and chosen[0][0] != "key":
            raise BadInput(
                "test usage is kept per key and as a tenant total: use --key or no grouping"
            )
        return chosen[0] if chosen else ("test", None)
    return chosen[0] if chosen else ("all", None)


@app.callback(invoke_without_command=True)
def usage(
    ctx: typer.Context,
    tenant: str | None = typer.Option(None, "--tenant", metavar="TENANT_ID"),
    key: str | None = typer.Option(None, "--key", metavar="KEY_ID", help="One key."),
    principal: str | None = typer.Option(
        None, "--principal", metavar="NAME", help="One principal (agent or service account)."
    ),
    model: str | None = typer.Option(None, "--model", metavar="MODEL", help="One model."),
    by: str | None = typer.Option(
        None, "--by", metavar="key|principal|model", help="One row per key, principal or model."
    ),
    env: str = typer.Option(
        "live", "--env", metavar="live|test", help="test: the tenant's test-key usage."
    ),
    granularity: str = typer.Option("month", "--granularity", metavar="hour|day|month"),
    period: str | None = typer.Option(
        None, "--period", metavar="P", help="YYYY-MM, YYYY-MM-DD or YYYY-MM-DDTHH (default: all)."
    ),
) -> None:
    """Requests, tokens and cost per period (UTC), from the rollups."""
    if ctx.invoked_subcommand is not None:
        return
    if not tenant:
        raise BadInput("--tenant is required")
    dimension, value = _dimension(key, principal, model, by, env)
    service(ctx).get_tenant(tenant)  # an unknown tenant is bad input, not an empty answer
    try:
        rows = usage_rows(
            tenant, granularity=granularity, period=period, dimension=dimension, value=value
        )
    except UsageQueryError as exc:
        raise BadInput(str(exc)) from None
    emit(ctx, rows, lambda c, r: render.table(c, r, _columns(dimension)))


@app.command("reconcile")
def reconcile_(
    ctx: typer.Context,
    tenant: str = typer.Option(..., "--tenant", metavar="TENANT_ID"),
    period: str | None = typer.Option(
        None,
        "--period",
        metavar="P",
        help="YYYY-MM, YYYY-MM-DD or YYYY-MM-DDTHH (default: the current UTC month).",
    ),
) -> None:
    """Compare the rollups of a period with the raw usage events; exit 1 unless drift is 0.

    A period with no usage events and no rollups says so ("nothing to compare", and
    `"compared": false` in --json) and exits 0: there is no drift to report.
    """
    period = period or current_month()
    service(ctx).get_tenant(tenant)
    try:
        result = reconcile(tenant, period)
    except UsageQueryError as exc:
        raise BadInput(str(exc)) from None
    data = result.as_dict()
    data["compared"] = bool(result.events or result.items)
    emit(ctx, data, _show_reconciliation)
    if not result.ok:
        sys.stderr.write(
            f"error: drift {result.drift} ({len(result.mismatches)} mismatched measures, "
            f"{result.malformed_events} malformed events) for {tenant} {period}\n"
        )
        raise typer.Exit(1)


def _show_reconciliation(console: Console, data: dict[str, Any]) -> None:
    if not data["compared"]:
        console.print(
            Text(
                f"{data['tenant_id']} {data['period']}: nothing to compare (no usage events "
                "and no rollups in this period; pick another with --period)",
                style="yellow",
            )
        )
        return
    style = "green" if data["ok"] else "bold red"
    counted = f"{data['events']} events, {data['items_compared']} rollup items compared"
    if data["malformed_events"]:
        counted += f", {data['malformed_events']} malformed events"
    summary = f"{data['tenant_id']} {data['period']}: drift {data['drift']} ({counted})"
    console.print(Text(summary, style=style))
    if data["mismatches"]:
        render.table(
            console,
            data["mismatches"],
            [("sk", "rollup item"), ("measure", "measure"), ("expected", "events say"),
             ("actual", "rollup says")],
        )  # fmt: skip


@app.command("dead-letters")
def dead_letters(
    ctx: typer.Context,
    source: str = typer.Option(
        "usage-aggregator", "--source", metavar="NAME", help="The stream consumer."
    ),
    limit: int = typer.Option(100, "--limit", min=1, max=1000),
) -> None:
    """Stream batches a consumer gave up on (its on-failure queue), without removing them."""
    if source not in DEAD_LETTER_SOURCES:
        raise BadInput(f"--source must be one of {', '.join(DEAD_LETTER_SOURCES)}")
    if connect(ctx).stack_outputs and source != "usage-aggregator":
        raise BadInput("with --stack, dead letters are listed for usage-aggregator only")
    url = _queue_url(ctx, source)
    letters = _peek(url, limit) if url else []
    if not url:
        note(ctx, f"no failure queue for {source} (are the local stack's pollers running?)")
    emit(ctx, letters, _show_dead_letters)


def _queue_url(ctx: typer.Context, source: str) -> str | None:
    import boto3
    from botocore.exceptions import ClientError

    outputs = state(ctx).stack_outputs
    if outputs:
        url = outputs.get("UsageDeadLetterQueueUrl")
        if not url:
            raise RuntimeError("the stack has no output UsageDeadLetterQueueUrl")
        return url
    from tollgate.local.pollers import dead_letter_queue_name

    name = dead_letter_queue_name(source)
    try:
        return str(boto3.client("sqs").get_queue_url(QueueName=name)["QueueUrl"])
    except ClientError as exc:
        error = exc.response.get("Error", {})
        codes = {error.get("Code"), error.get("QueryErrorCode")}
        if codes & {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}:
            return None
        raise


def _peek(url: str, limit: int) -> list[dict[str, Any]]:
    """Messages on the queue, left there (visibility timeout 0), at most ``limit``."""
    import boto3

    sqs = boto3.client("sqs")
    seen: dict[str, dict[str, Any]] = {}
    for _ in range(20):
        batch = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=0
        ).get("Messages", [])
        fresh = [m for m in batch if m["MessageId"] not in seen]
        if not fresh:
            break
        for m in fresh:
            try:
                body = json.loads(m["Body"])
            except ValueError:
                body = {"body": m["Body"]}
            seen[m["MessageId"]] = body
        if len(seen) >= limit:
            break
    return list(seen.values())[:limit]


def _show_dead_letters(console: Console, letters: list[dict[str, Any]]) -> None:
    rows = []
    for letter in letters:
        info = letter.get("DDBStreamBatchInfo") or {}
        ctx = letter.get("requestContext") or {}
        rows.append(
            {
                "at": letter.get("timestamp"),
                "shard": info.get("shardId"),
                "first": info.get("startSequenceNumber"),
                "last": info.get("endSequenceNumber"),
                "records": info.get("batchSize"),
                "condition": ctx.get("condition"),
                "error": (letter.get("responseContext") or {}).get("functionError"),
            }
        )
    render.table(
        console,
        rows,
        [("at", "at"), ("shard", "shard"), ("first", "first seq"), ("last", "last seq"),
         ("records", "records"), ("condition", "condition"), ("error", "error")],
    )  # fmt: skip
