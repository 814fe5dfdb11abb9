"""The bad-input suites (hypothesis): every parser a stranger can reach. ``make fuzz`` runs
them with ``TOLLGATE_FUZZ_PROFILE=deep``; the session ends with how many cases ran."""

from __future__ import annotations

from typing import Any

from tests.fuzz.support import CASES, PROFILE


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not CASES:
        return
    total = sum(CASES.values())
    parts = ", ".join(f"{name} {n}" for name, n in sorted(CASES.items()))
    terminalreporter.write_line(f"fuzz ({PROFILE} profile): {total} cases ran: {parts}")


def pytest_collection_modifyitems(items: list[Any]) -> None:
    import pytest

    quiet = pytest.mark.filterwarnings("ignore:No application metrics to publish")
    for item in items:
        if "tests/fuzz/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(quiet)
