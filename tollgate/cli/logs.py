"""Log lines of the functions the CLI runs in-process (``keys revoke --local``, the services).

Those functions log through Powertools (``functions/common/observability.py``), whose handler
writes to stdout: right for Lambda, wrong for a CLI whose stdout is one JSON document. While
a command runs, their log lines go to stderr, at WARNING unless ``--verbose`` (INFO) or
``TOLLGATE_LOG_LEVEL`` asks for another level; both are put back afterwards, so running the
CLI in-process (the tests) changes nothing for the code around it.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from tollgate.cli.context import BadInput

LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_LEVEL: Final = "WARNING"


def level(verbose: bool, environ: dict[str, str] | None = None) -> str:
    """INFO with ``--verbose``, else ``TOLLGATE_LOG_LEVEL`` (default WARNING)."""
    if verbose:
        return "INFO"
    env = os.environ if environ is None else environ
    raw = (env.get("TOLLGATE_LOG_LEVEL") or DEFAULT_LEVEL).strip().upper()
    if raw not in LEVELS:
        raise BadInput(f"TOLLGATE_LOG_LEVEL must be one of {', '.join(LEVELS)}, not {raw[:20]!r}")
    return raw


class _Stderr:
    """Whatever ``sys.stderr`` is when a line is written (pytest swaps it per test)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _function_loggers() -> list[logging.Logger]:
    from functions.common.observability import logger  # creates its stdout handler

    names = {"tollgate", str(logger.name)}
    return [logging.getLogger(name) for name in sorted(names)]


def _swap(handler: logging.StreamHandler[Any], stream: Any) -> Any:
    """Point ``handler`` at ``stream``; the stream it had. Unlike ``setStream`` this does not
    flush the old stream (the handler flushes after every record; the old one may be closed)."""
    handler.acquire()
    try:
        old, handler.stream = handler.stream, stream
    finally:
        handler.release()
    return old


@contextmanager
def to_stderr(wanted: str) -> Iterator[None]:
    """Run the block with the functions' loggers at ``wanted`` and writing to stderr."""
    saved: list[tuple[logging.Logger, int, list[tuple[logging.StreamHandler[Any], Any]]]] = []
    stderr = _Stderr()
    for log in _function_loggers():
        streams = [
            (handler, _swap(handler, stderr))
            for handler in log.handlers
            if isinstance(handler, logging.StreamHandler)
            and not isinstance(handler, logging.FileHandler)
        ]
        saved.append((log, log.level, streams))
        log.setLevel(wanted)
    try:
        yield
    finally:
        for log, old_level, streams in saved:
            log.setLevel(old_level)
            for handler, stream in streams:
                _swap(handler, stream)
