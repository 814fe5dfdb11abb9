"""The write meter of the embedded moto server (tollgate/local/meter.py, ``server.metered()``).

Each test writes items of known DynamoDB size (tollgate.local.capacity, tested against AWS's
examples in tests/unit/test_capacity.py) and checks the units the meter charged: a put, an
update that grows the item, a GSI projection (KEYS_ONLY vs ALL, an index key change), a
transaction (x2), BatchWriteItem (each item rounded alone), a refused conditional write, a
throttled request (not charged), and that nothing is recorded outside a block.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from tollgate.local import aws
from tollgate.local.capacity import item_size
from tollgate.local.faults import THROTTLE

KB = 1024


@pytest.fixture
def table(moto_server: aws.MotoServer) -> Iterator[tuple[Any, str]]:
    """A table ``pk`` with two GSIs on ``g``: ``by_g_keys`` (KEYS_ONLY), ``by_g_all`` (ALL)."""
    client = boto3.client("dynamodb", endpoint_url=moto_server.endpoint)
    name = f"meter-{uuid.uuid4().hex[:8]}"
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "g", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by_g_keys",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
            {
                "IndexName": "by_g_all",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            },
        ],
    )
    yield client, name
    client.delete_table(TableName=name)


def _item(pk: str, size: int, **extra: dict[str, str]) -> dict[str, dict[str, str]]:
    """An item of exactly ``size`` bytes by DynamoDB's rules (``extra`` included)."""
    item: dict[str, dict[str, str]] = {"pk": {"S": pk}, **extra}
    item["d"] = {"S": "x" * (size - item_size(item) - 1)}
    assert item_size(item) == size
    return item


def test_put_of_a_known_size_costs_its_write_units(
    moto_server: aws.MotoServer, table: tuple[Any, str]
) -> None:
    client, name = table
    with moto_server.metered() as m:
        client.put_item(TableName=name, Item=_item("a", 2 * KB + 1))  # 3 units
        client.put_item(TableName=name, Item=_item("b", KB))  # exactly 1 KB: 1 unit
        client.get_item(TableName=name, Key={"pk": {"S": "a"}})
    assert m.write_units_total == 4
    assert m.by_table == {name: 4}
    assert m.round_trips == {"PutItem": 2, "GetItem": 1}
    assert [w.units for w in m.writes] == [3, 1]
    assert m.writes[0].before is None and m.writes[0].after == _item("a", 2 * KB + 1)
    assert m.bytes_returned["GetItem"] > 2 * KB  # the item came back


def test_update_counts_the_larger_of_before_and_after(
    moto_server: aws.MotoServer, table: tuple[Any, str]
) -> None:
    client, name = table
    client.put_item(TableName=name, Item=_item("a", 900))
    with moto_server.metered() as m:
        client.update_item(  # 900 B -> ~2.9 KB: 3 units
            TableName=name,
            Key={"pk": {"S": "a"}},
            UpdateExpression="SET more = :v",
            ExpressionAttributeValues={":v": {"S": "y" * 2000}},
        )
        client.update_item(  # shrinks back to 900 B: still 3 units (the larger)
            TableName=name, Key={"pk": {"S": "a"}}, UpdateExpression="REMOVE more"
        )
        client.delete_item(TableName=name, Key={"pk": {"S": "a"}})  # 900 B: 1 unit
    assert [w.units for w in m.writes] == [3, 3, 1]
    assert item_size(m.writes[0].after) == 900 + len("more") + 2000


def test_gsi_projection_and_index_key_change(
    moto_server: aws.MotoServer, table: tuple[Any, str]
) -> None:
    client, name = table
    with moto_server.metered() as m:
        # ~3 KB item in both indexes: table 3, KEYS_ONLY entry (pk + g) 1, ALL entry 3
        client.put_item(TableName=name, Item=_item("a", 3 * KB - 10, g={"S": "one"}))
        # g changes: each index deletes the old entry and puts the new one
        client.update_item(
            TableName=name,
            Key={"pk": {"S": "a"}},
            UpdateExpression="SET g = :g",
            ExpressionAttributeValues={":g": {"S": "two"}},
        )
        # a non-key attribute changes: KEYS_ONLY entry unchanged (0), ALL entry rewritten (3)
        client.update_item(
            TableName=name,
            Key={"pk": {"S": "a"}},
            UpdateExpression="SET n = :n",
            ExpressionAttributeValues={":n": {"N": "1"}},
        )
    put, move, touch = (w.cost for w in m.writes)
    assert (put.table_units, dict(put.index_units)) == (3, {"by_g_keys": 1, "by_g_all": 3})
    assert (move.table_units, dict(move.index_units)) == (3, {"by_g_keys": 2, "by_g_all": 6})
    assert (touch.table_units, dict(touch.index_units)) == (3, {"by_g_all": 3})
    assert m.by_index == {name: 9, f"{name}/by_g_keys": 3, f"{name}/by_g_all": 12}
    assert m.write_units_total == 24


def test_transaction_costs_twice_on_the_table(
    moto_server: aws.MotoServer, table: tuple[Any, str]
) -> None:
    client, name = table
    client.put_item(TableName=name, Item=_item("c", 500))
    with moto_server.metered() as m:
        client.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": name, "Item": _item("a", 500)}},
                {"Put": {"TableName": name, "Item": _item("b", 1500)}},
                {
                    "ConditionCheck": {
                        "TableName": name,
                        "Key": {"pk": {"S": "c"}},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ]
        )
    assert [(w.action, w.units) for w in m.writes] == [
        ("Put", 2),
        ("Put", 4),
        ("ConditionCheck", 2),
    ]
    assert all(w.transactional for w in m.writes)
    assert m.round_trips == {"TransactWriteItems": 1}


def test_cancelled_transaction_and_failed_condition_are_charged(
    moto_server: aws.MotoServer, table: tuple[Any, str]
) -> None:
    client, name = table
    client.put_item(TableName=name, Item=_item("a", 1500))
    with moto_server.metered() as m:
        with pytest.raises(ClientError, match="ConditionalCheckFailed"):
            client.put_item(  # refused: charged for the 1.5 KB item there (2)
                TableName=name,
                Item=_item("a", 100),
                ConditionExpression="attribute_not_exists(pk)",
            )
        with pytest.raises(ClientError, match="TransactionCanceled"):
            client.transact_write_items(  # both refused: 2 x 1 (no item) + 2 x 2 (1.5 KB)
                TransactItems=[
                    {"Put": {"TableName": name, "Item": _item("new", 100)}},
                    {
                        "Update": {
                            "TableName": name,
                            "Key": {"pk": {"S": "a"}},
                            "UpdateExpression": "SET n = :n",
                            "ConditionExpression": "attribute_not_exists(pk)",
                            "ExpressionAttributeValues": {":n": {"N": "1"}},
                        }
                    },
                ]
            )
    assert [(w.applied, w.units) for w in m.writes] == [(False, 2), (False, 2), (False, 4)]
    assert client.get_item(TableName=name, Key={"pk": {"S": "new"}}).get("Item") is None


def test_batch_write_rounds_each_item_alone(
    moto_server: aws.MotoServer, table: tuple[Any, str]
) -> None:
    client, name = table
    client.put_item(TableName=name, Item=_item("gone", 2 * KB))
    with moto_server.metered() as m:
        client.batch_write_item(
            RequestItems={
                name: [
                    {"PutRequest": {"Item": _item("a", 500)}},  # 1
                    {"PutRequest": {"Item": _item("b", int(3.5 * KB))}},  # 4
                    {"DeleteRequest": {"Key": {"pk": {"S": "gone"}}}},  # 2
                ]
            }
        )
    assert [(w.action, w.units) for w in m.writes] == [("Put", 1), ("Put", 4), ("Delete", 2)]
    assert m.write_units_total == 7
    assert m.round_trips == {"BatchWriteItem": 1}


def test_throttled_request_is_not_charged_and_table_filter(
    moto_server: aws.MotoServer, table: tuple[Any, str]
) -> None:
    client, name = table
    no_retry = boto3.client(
        "dynamodb",
        endpoint_url=moto_server.endpoint,
        config=botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )
    try:
        with moto_server.metered(tables=[name]) as m, moto_server.metered(tables=["other"]) as o:
            moto_server.faults.next_request(THROTTLE, operation="PutItem", table=name)
            with pytest.raises(ClientError):
                no_retry.put_item(TableName=name, Item=_item("a", 100))
            client.put_item(TableName=name, Item=_item("a", 100))
            client.list_tables()
    finally:
        moto_server.faults.off()
    assert m.round_trips == {"PutItem": 2}  # the throttled one was a round trip too
    assert m.write_units_total == 1  # but only the one moto applied is charged
    assert o.requests == 0 and o.writes == []


def test_nothing_is_recorded_outside_a_block(
    moto_server: aws.MotoServer, table: tuple[Any, str]
) -> None:
    client, name = table
    with moto_server.metered() as m:
        pass
    client.put_item(TableName=name, Item=_item("a", 100))
    assert m.requests == 0 and m.writes == []
    assert moto_server.meter.on is False
