"""The ``tollgate`` command line (docs/cli.md): plans, tenants, keys and audit.

Global options go before or after the command: ``--local``, ``--stack NAME``, ``--json``,
``--verbose``. Exit codes: 0 on success; 2 on bad input (one line on stderr, nothing
written); 1 on any other failure (one line on stderr, no stack trace). Each command group
lives in its own module and is registered below; add new groups the same way.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Final

import typer

# typer >= 0.24 ships its own copy of click: its usage errors are these classes, not click's.
from typer._click.exceptions import ClickException

from functions.keys import KeyServiceError
from functions.keys.errors import redact
from tollgate.cli import (
    audit,
    billing,
    detect,
    exposure,
    finetune,
    keys,
    migrate,
    plans,
    prices,
    statement,
    tenants,
    trust,
    usage,
)
from tollgate.cli.context import BadInput, State

app = typer.Typer(
    name="tollgate",
    help="Manage Tollgate: plans, tenants, keys and the audit trail.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: flags as flags (rich shows `--json <bool>`)
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _global(
    ctx: typer.Context,
    local: bool = typer.Option(
        False, "--local", help="Talk to the local stack (make local) on TOLLGATE_AWS_PORT."
    ),
    stack: str | None = typer.Option(
        None, "--stack", metavar="NAME", help="Talk to a deployed stack; tables from its outputs."
    ),
    json_out: bool = typer.Option(False, "--json", help="Machine output: one JSON document."),
    verbose: bool = typer.Option(
        False, "--verbose", help="Show the INFO log lines of in-process functions (on stderr)."
    ),
) -> None:
    """Global options, before or after the command. Commands that need AWS need --local or
    --stack NAME; they take effect when the command first touches AWS (so `--help` works
    without them)."""
    ctx.obj = State(json=json_out, local=local, stack=stack, verbose=verbose)


app.add_typer(plans.app, name="plans")
app.add_typer(prices.app, name="prices")
app.add_typer(tenants.app, name="tenants")
app.add_typer(keys.app, name="keys")
app.add_typer(trust.app, name="trust")
app.command("audit")(audit.audit)
app.add_typer(usage.app, name="usage")
app.command("statement")(statement.statement)
app.command("exposure")(exposure.exposure)
app.add_typer(detect.app, name="detect")
app.add_typer(finetune.app, name="finetune")
app.command("migrate")(migrate.migrate)
app.add_typer(billing.app, name="billing")  # billing export (issue 14 item 5)


def _fail(code: int, message: str) -> int:
    line = redact(" ".join(str(message).split())) or "failed"
    sys.stderr.write(f"error: {line}\n")
    return code


GLOBAL_FLAGS: Final = frozenset({"--local", "--json", "--verbose"})
GLOBAL_WITH_VALUE: Final = frozenset({"--stack"})


def hoist_global_options(args: Sequence[str]) -> list[str]:
    """Move the global options to the front, wherever they were given (up to a ``--``), so
    ``tollgate keys list --tenant t --json`` means ``tollgate --json keys list --tenant t``.
    No command has an option by these names; a value spelled like one is taken for it."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        name, given_value = arg.split("=", 1)[0], "=" in arg
        if arg in GLOBAL_FLAGS or (name in GLOBAL_WITH_VALUE and given_value):
            front.append(arg)
        elif arg in GLOBAL_WITH_VALUE:
            if i + 1 == len(args) or args[i + 1].startswith("-"):
                raise BadInput(f"{arg} needs a value: {arg} NAME")
            front.extend(args[i : i + 2])
            i += 1
        else:
            rest.append(arg)
        i += 1
    return front + rest


def _verbose(args: Sequence[str]) -> bool:
    return "--verbose" in args[: args.index("--")] if "--" in args else "--verbose" in args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    from tollgate.cli import logs

    try:
        args = hoist_global_options(list(sys.argv[1:] if argv is None else argv))
        with logs.to_stderr(logs.level(_verbose(args))):
            result = app(args=args, prog_name="tollgate", standalone_mode=False)
    except KeyServiceError as exc:
        return _fail(2, exc.message)
    except ClickException as exc:  # usage errors (exit 2)
        message = exc.format_message()
        if not message:  # e.g. a group without a command: help was printed already
            return exc.exit_code
        return _fail(exc.exit_code, message)
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except (typer.Abort, KeyboardInterrupt):
        return _fail(1, "aborted")
    except Exception as exc:  # the one place that turns any other failure into exit 1
        return _fail(1, _describe(exc))
    return result if isinstance(result, int) else 0


def _describe(exc: BaseException) -> str:
    """One line about an unexpected failure, with a hint for the usual local mistake."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if "Could not connect to the endpoint URL" in text or "ConnectionRefused" in text:
        text += " (is the stack running? `make local` for --local)"
    return text
