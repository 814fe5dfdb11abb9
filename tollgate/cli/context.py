"""What every command shares: the global options, where AWS is, the service, output.

Command modules stay thin: parse options, call :class:`~functions.keys.KeyService` (or
another domain service), hand the result to :func:`emit` with a human renderer. A command
that touches AWS goes through :func:`service` or :func:`connect` first: that is where
``--local`` / ``--stack`` take effect, and where forgetting both is refused with a hint.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import typer
from rich.console import Console

from functions.keys import InvalidInput, KeyService


class BadInput(InvalidInput):
    """Bad input found by the CLI layer itself (exit 2, nothing written)."""


NO_TARGET: Final = (
    "say where Tollgate runs: --local (the stack of `make local`) or --stack NAME "
    "(a deployed stack)"
)


@dataclass
class State:
    """The global options (before or after the command) and what they led to."""

    json: bool = False
    local: bool = False
    stack: str | None = None
    verbose: bool = False
    stack_outputs: dict[str, str] = field(default_factory=dict)
    connected: bool = False
    _service: KeyService | None = None

    def connect(self) -> None:
        """Point this process's AWS clients and tables where the options say (once).

        Neither ``--local`` nor ``--stack`` is bad input, unless ``AWS_ENDPOINT_URL`` names
        an endpoint explicitly (tables by their default or ``TOLLGATE_TABLE_*`` names: what
        the tests do); never a guess at an account and a region.
        """
        if self.connected:
            return
        if not (self.local or self.stack or os.environ.get("AWS_ENDPOINT_URL")):
            raise BadInput(NO_TARGET)
        if self.local:
            from tollgate.local import aws

            aws.point_clients_at(local_endpoint())  # before any client is built
        if self.stack:
            from functions.common.models import bind_tables
            from tollgate.cli.stack import read_outputs, table_names

            self.stack_outputs = read_outputs(self.stack)
            bind_tables(table_names(self.stack_outputs, f"stack {self.stack!r}"))
        self.connected = True

    @property
    def service(self) -> KeyService:
        if self._service is None:
            self.connect()
            self._service = KeyService()
        return self._service


def state(ctx: typer.Context) -> State:
    """The state of the running invocation (set by the root callback)."""
    found = ctx.find_root().obj
    if not isinstance(found, State):
        found = ctx.find_root().obj = State()
    return found


def connect(ctx: typer.Context) -> State:
    """The state, with AWS pointed where ``--local`` / ``--stack`` say (see ``State.connect``)."""
    found = state(ctx)
    found.connect()
    return found


def service(ctx: typer.Context) -> KeyService:
    return state(ctx).service


def console() -> Console:
    """A console on the current stdout (built per call, so captured output works)."""
    wide = None if sys.stdout.isatty() else 200  # piped: do not squeeze tables to 80 columns
    return Console(file=sys.stdout, width=wide, highlight=False, soft_wrap=False, emoji=False)


def emit(ctx: typer.Context, data: Any, human: Callable[[Console, Any], None]) -> None:
    """Print ``data``: one JSON document with ``--json``, else ``human(console, data)``."""
    if state(ctx).json:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    else:
        human(console(), data)


def note(ctx: typer.Context, message: str) -> None:
    """A human remark on stderr (never in ``--json`` stdout)."""
    if not state(ctx).json:
        sys.stderr.write(message + "\n")


def utc_now() -> datetime:
    return datetime.now(UTC)


def current_month() -> str:
    """``YYYY-MM`` of the current UTC month: the default ``--period`` of statements and
    reconciliation."""
    return utc_now().strftime("%Y-%m")


def split_csv(value: str | None) -> list[str] | None:
    """``"a, b,c"`` -> ``["a", "b", "c"]``; None stays None (use the default)."""
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def local_endpoint() -> str:
    """The embedded AWS endpoint of ``make local`` (``TOLLGATE_AWS_PORT``, default 4566)."""
    raw = os.environ.get("TOLLGATE_AWS_PORT", "4566").strip() or "4566"
    if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) < 65536:
        raise BadInput(f"TOLLGATE_AWS_PORT must be a port number, not {raw[:20]!r}")
    return f"http://127.0.0.1:{int(raw)}"
