"""The fault draws of tollgate/local/faults.py replay from the seed (finding 5 of issue 11):
a draw depends on the seed, the caller's draw key, the operation, the table and how many
such draws the key made -- never on the order in which threads reach moto -- and a stream
handler never fails more than twice in a row on purpose."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tollgate.local.faults import (
    CRASH,
    CrashingHandler,
    FaultPlan,
    Faults,
    InjectedCrash,
)

PLAN = FaultPlan(throttle=0.2, error=0.2)
CALLS = [(f"c{c}.{n}", op, "tollgate-tenants") for c in range(4) for n in range(1, 30)
         for op in ("GetItem", "UpdateItem", "UpdateItem")]  # fmt: skip


def draws(faults: Faults, calls: list[tuple[str, str, str]]) -> dict[tuple[str, str, int], Any]:
    """Each call's fault, by (key, operation, how many such calls the key made before)."""
    seen: dict[tuple[str, str], int] = {}
    out = {}
    for key, op, table in calls:
        n = seen.get((key, op), 0)
        seen[key, op] = n + 1
        out[key, op, n] = faults.draw_request(op, table, key)
    return out


@pytest.mark.parametrize("order_seed", [1, 2, 3])
def test_a_seed_replays_every_draw_whatever_the_order_of_the_calls(order_seed: int) -> None:
    """Requests interleave differently (each keeps the order of its own calls)."""
    first = draws(Faults(PLAN, seed=77), CALLS)
    queues: dict[str, list[tuple[str, str, str]]] = {}
    for call in CALLS:
        queues.setdefault(call[0], []).append(call)
    rng, interleaved = random.Random(order_seed), []
    while queues:
        key = rng.choice(sorted(queues))
        interleaved.append(queues[key].pop(0))
        if not queues[key]:
            del queues[key]
    assert interleaved != CALLS
    assert draws(Faults(PLAN, seed=77), interleaved) == first
    assert sum(v is not None for v in first.values()) > 0


def test_another_seed_draws_other_faults() -> None:
    assert draws(Faults(PLAN, seed=77), CALLS) != draws(Faults(PLAN, seed=78), CALLS)


def test_an_alias_draws_as_its_key_and_a_spared_key_draws_nothing() -> None:
    plain, aliased = Faults(PLAN, seed=5), Faults(PLAN, seed=5)
    aliased.alias("apigw-request-id-1", "c0.1")
    expected = [plain.draw_request("UpdateItem", "t", "c0.1") for _ in range(20)]
    assert [aliased.draw_request("UpdateItem", "t", "apigw-request-id-1") for _ in range(20)] == (
        expected
    )
    spared = Faults(FaultPlan(error=1.0), seed=5)
    spared.spare("c0.1")
    assert spared.draw_request("UpdateItem", "t", "c0.1") is None
    assert spared.draw_request("UpdateItem", "t", "c0.2") is not None


def test_a_run_without_a_seed_gets_one_to_print() -> None:
    seed = Faults().seed
    assert isinstance(seed, int) and seed > 0


def test_a_stream_handler_never_fails_more_than_twice_in_a_row_on_purpose() -> None:
    calls: list[int] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(1)
        return {"batchItemFailures": []}

    faults = Faults(FaultPlan(crash=1.0), seed=3)
    crashing = CrashingHandler(handler, faults, "agg")
    outcomes = []
    for _ in range(9):
        try:
            crashing({"Records": [{}]}, None)
            outcomes.append("ok")
        except InjectedCrash:
            outcomes.append(CRASH)
    assert outcomes == [CRASH, CRASH, "ok"] * 3
    assert len(calls) == 3


def test_a_handler_failing_on_dynamodb_faults_counts_towards_the_cap() -> None:
    """Every DynamoDB call fails: the handler reports its records as failed twice, then runs
    spared (no fault drawn for its trace) and succeeds, then meets faults again."""
    faults = Faults(FaultPlan(error=1.0), seed=3)

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        failed = faults.draw_request("UpdateItem", "tollgate-rollups", "stream:agg") is not None
        return {"batchItemFailures": [{"itemIdentifier": "1"}] if failed else []}

    crashing = CrashingHandler(handler, faults, "agg")
    answers = [bool(crashing({"Records": [{}]}, None)["batchItemFailures"]) for _ in range(6)]
    assert answers == [True, True, False] * 2
