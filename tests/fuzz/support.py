"""Shared by the bad-input suites: hypothesis profiles, the case counter, table snapshots
and the checks every refusal must pass.

Profiles (``TOLLGATE_FUZZ_PROFILE``): ``ci`` (the default: few examples per property, the
whole suite in well under a minute on 2 cores) and ``deep`` (``make fuzz``: many more, no
time limit per example). Each property scales its own count with :func:`fuzz`.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from typing import Any, Final, TypeVar

from hypothesis import HealthCheck, settings

PROFILE: Final = os.environ.get("TOLLGATE_FUZZ_PROFILE", "ci")
_SCALE: Final = {"ci": 1.0, "deep": 25.0}
if PROFILE not in _SCALE:
    raise RuntimeError(f"TOLLGATE_FUZZ_PROFILE must be one of {sorted(_SCALE)}, not {PROFILE!r}")

CASES: Counter[str] = Counter()  # examples run, per suite (printed at the end of the session)
F = TypeVar("F", bound=Callable[..., Any])


def fuzz(examples: int, *, deep_max: int | None = None) -> Callable[[F], F]:
    """Hypothesis settings for a property: ``examples`` in the ci profile, scaled in deep
    (at most ``deep_max``: for properties whose examples grow the tables they scan)."""
    scaled = int(examples * _SCALE[PROFILE])
    if deep_max is not None:
        scaled = min(scaled, max(examples, deep_max))
    return settings(
        max_examples=max(1, scaled),
        deadline=None,  # moto round trips: time is not what is being tested
        derandomize=PROFILE == "ci",  # CI runs the same cases each time; deep explores
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,  # fixtures build state once per test
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
        print_blob=True,
    )


def count(suite: str) -> None:
    CASES[suite] += 1


def snapshot(client: Any, *kinds: str) -> dict[str, list[str]]:
    """Every item of the tables ``kinds`` (all if none), canonicalised: equal before and
    after means nothing was written."""
    from functions.common.config import TABLE_KINDS, TableNames

    names = TableNames()
    state = {}
    for kind in kinds or TABLE_KINDS:
        items = client.scan(TableName=getattr(names, kind), ConsistentRead=True)["Items"]
        state[kind] = sorted(json.dumps(i, sort_keys=True) for i in items)
    return state


def openai_error(text: str) -> dict[str, Any]:
    """The OpenAI error body of an error answer (asserts its shape); never a traceback."""
    assert "Traceback" not in text and 'File "' not in text, text[:300]
    doc = json.loads(text)
    assert isinstance(doc, dict) and set(doc) == {"error"}, text[:300]
    err = doc["error"]
    assert isinstance(err, dict), text[:300]
    for field in ("message", "type", "code"):
        assert isinstance(err.get(field), str) and err[field], (field, text[:300])
    return err
