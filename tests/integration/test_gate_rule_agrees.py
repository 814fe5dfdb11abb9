"""The admission rule's two forms agree: the conditional writes DynamoDB evaluates
(``functions/gate/admission.py`` ``key_update`` / ``shard_update``) and the Python rule that
explains a failure (``diagnose_key`` / ``diagnose_shard``).

For random key items and counter shards (statuses, serials and graces, parent statuses,
token and spend budgets, minute and month windows, counts around their limits, scopes,
per-key limits), put the item into moto, send the write, and check: the write succeeded
exactly when the Python rule finds nothing to refuse and nothing to roll forward; and when it
failed, the diagnosis names a refusal or the change to make before trying again.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.common import ddb
from functions.common.config import TableNames
from functions.common.routes import ROUTES
from functions.gate import admission as ad
from functions.gate import items as it
from functions.gate.decisions import Decision

NOW = 1_790_000_000.0
MINUTE = it.minute_window(NOW)
MONTH = it.month_window(NOW)
SETTINGS = settings(
    max_examples=120, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip

statuses = st.sampled_from(["active", "suspended", "revoked"])
maybe = st.none() | st.integers(0, 4)

key_items = st.fixed_dictionaries(
    {
        "s": statuses,
        "w": st.sampled_from([MINUTE - 1, MINUTE, MINUTE + 1]),
        "c": st.integers(0, 4),
        "n": st.integers(1, 3),
        "g": st.sampled_from([0, int(NOW) - 1, int(NOW) + 60]),
    },
    optional={
        "ps": statuses,
        "b": st.integers(0, 4),
        "u": st.integers(0, 4),
        "sb": st.integers(0, 4),
        "kr": st.integers(0, 4),  # kr: the key's own per-minute limit (keyattrs)
    },
).map(lambda i: {**i, "su": i["sb"] - 2 + i["c"]} if "sb" in i else i)  # spent around it
shard_items = st.fixed_dictionaries(
    {
        "st": st.sampled_from(["active", "suspended"]),
        "mo": st.sampled_from(["2000-01", MONTH, "2999-01"]),
        "rq": st.integers(0, 4),
        "tk": st.integers(0, 4),
        "sp": st.integers(0, 4),
        "sc": st.lists(st.sampled_from(["inference:invoke", "tools:execute"]), unique=True),
        "ns": st.just(1),
        "ix": st.just(0),
    },
    optional={
        "ra": st.integers(0, 4),
        "ta": st.integers(0, 4),
        "rpm": st.integers(0, 4),
        "sa": st.integers(0, 4),
    },
)


def _facts(parent: bool, serial: int) -> ad.Facts:
    return ad.Facts("key_x", "acme", "live", "svc", frozenset(), "key_p" if parent else None,
                    None, serial)  # fmt: skip


def _put(dynamodb: Any, address: dict[str, Any], item: dict[str, Any]) -> None:
    dynamodb.put_item(
        TableName=TableNames().gate,
        Item={**address, **{k: ddb.to_ddb(v) for k, v in item.items()}},
    )


def _send(request: dict[str, Any]) -> bool:
    from functions.gate.store import ConditionFailed, call

    try:
        call("update_item", **request)
    except ConditionFailed:
        return False
    return True


@given(item=key_items, parent=st.booleans(), serial=st.integers(1, 3), rpm=maybe,
       stale=st.booleans())  # fmt: skip
@SETTINGS
def test_key_write_and_key_diagnosis_agree(
    dynamodb: Any, item: dict[str, Any], parent: bool, serial: int, rpm: int | None,
    stale: bool,
) -> None:  # fmt: skip
    facts = _facts(parent, serial)
    _put(dynamodb, it.key_address(facts.key_id, facts.parent_key_id), item)
    window = ad.KeyWindow(stale, MINUTE)
    ok = _send(ad.key_update(TableNames().gate, facts, NOW, rpm, window))
    found = ad.diagnose_key(item, facts, NOW, rpm)
    if ok:
        assert found == ad.KeyWindow(stale, MINUTE), (item, found)
    else:
        # a refusal, or a different window to count in (the write assumed the other one)
        assert isinstance(found, Decision) or found != window, (item, found)


@given(item=shard_items, route=st.sampled_from(ROUTES), rpm=maybe)
@SETTINGS
def test_shard_write_and_shard_diagnosis_agree(
    dynamodb: Any, item: dict[str, Any], route: Any, rpm: int | None
) -> None:
    facts = _facts(False, 1)
    _put(dynamodb, it.shard_address("acme", "live", 0), item)
    ok = _send(ad.shard_update(TableNames().gate, facts, route, 0, MONTH, rpm))
    found = ad.diagnose_shard(item, facts, route, NOW, MONTH, rpm, TableNames().gate)
    if ok:
        assert found == ad.Retry(MONTH), (item, found)
    else:
        assert found != ad.Retry(MONTH), (item, found)
