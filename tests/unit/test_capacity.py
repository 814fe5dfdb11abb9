"""DynamoDB's item-size and capacity rules (tollgate.local.capacity) against AWS's own examples.

The examples and the pages they come from (Amazon DynamoDB Developer Guide):

* "DynamoDB item sizes and formats" (CapacityUnitCalculations): the size of a string, number,
  binary, null/boolean, list and map; "each List or Map element requires 1 byte of overhead";
  "Numbers are variable length, with up to 38 significant digits. Leading and trailing zeroes
  are trimmed. The size of a number is approximately (length of attribute name) + (1 byte per
  two significant digits) + (1 byte)".
* "Item Sizes and Capacity Unit Consumption" / "Managing Throughput Settings on Provisioned
  Tables": reading a 3.5 KB item rounds to 4 KB, a 10 KB item to 12 KB; BatchGetItem of a
  1.5 KB and a 6.5 KB item counts 12 KB; a Query returning 40.8 KB counts 44 KB, 1,500 items of
  64 bytes 96 KB; an eventually consistent read of 80 KB costs 10 units; an 8 KB item costs 2
  units strongly consistent, 1 eventually; a 3,500-byte read costs as much as 4 KB; writing a
  500-byte (or 512-byte) item costs 1 unit; putting or deleting a 1.6 KB item rounds to 2 KB;
  BatchWriteItem of a 500-byte and a 3.5 KB item counts 5 KB; a failed conditional write of a
  1 KB item costs 1 unit, of an item twice that size 2, of a missing item 1.
* "DynamoDB read and write operations": an 8 KB item costs 4 read units in a transaction.
* "Amazon DynamoDB Transactions: How It Works": a transaction writing three 500-byte items
  costs 6 write units (two per item: prepare and commit); reading three 500-byte items in a
  transaction, 6 read units.
* "Global Secondary Indexes" (GSI.md, "Write Capacity Units", the GameScores table with
  GameTitleIndex): a write that defines an indexed attribute costs the index one write; a
  change of an index key value (A to B) two (delete + put); deleting the indexed attribute one;
  an item in the index neither before nor after nothing; a change of projected attributes only,
  one; an item without TopScore is not in the index. A Query of 8 index entries of 2,000 bytes
  costs 2 read units (16,000 bytes rounded to 16 KB, eventually consistent).
"""

from __future__ import annotations

import base64

import pytest

from tollgate.local.capacity import (
    IndexSpec,
    ItemSizeError,
    TableSpec,
    batch_read_units,
    index_write_units,
    item_size,
    item_write_units,
    number_size,
    read_units,
    value_size,
    write_cost,
    write_units,
)

KB = 1024


def _blob(size: int, name: str = "d") -> dict[str, dict[str, str]]:
    """An item of exactly ``size`` bytes: one string attribute."""
    return {name: {"S": "x" * (size - len(name))}}


# -- item size ----------------------------------------------------------------------------


def test_string_is_name_plus_utf8_bytes() -> None:
    assert item_size({"name": {"S": "abc"}}) == 4 + 3
    assert item_size({"é": {"S": "€"}}) == 2 + 3  # UTF-8 bytes, not characters


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 1),  # no significant digit: the 1 byte
        ("7", 2),
        ("27", 2),
        ("123", 3),
        ("1234", 3),
        ("0012300", 3),  # leading and trailing zeroes trimmed: 123
        ("-1.5", 2),
        ("1000000", 2),  # 1
        ("3.14159", 4),  # 6 digits: 3 + 1
        ("1E+5", 2),
        ("9" * 38, 20),  # 38 significant digits: 19 + 1
    ],
)
def test_number_is_one_byte_per_two_significant_digits_plus_one(text: str, size: int) -> None:
    assert number_size(text) == size
    assert item_size({"n": {"N": text}}) == 1 + size


def test_binary_counts_raw_bytes_not_base64() -> None:
    raw = bytes(range(10))
    assert item_size({"b": {"B": raw}}) == 1 + 10
    assert item_size({"b": {"B": base64.b64encode(raw).decode()}}) == 1 + 10


def test_null_and_boolean_are_one_byte() -> None:
    assert item_size({"ok": {"BOOL": True}, "no": {"NULL": True}}) == 2 + 1 + 2 + 1


def test_list_and_map_three_bytes_plus_one_per_element() -> None:
    assert item_size({"l": {"L": []}}) == 1 + 3
    assert item_size({"m": {"M": {}}}) == 1 + 3
    # list: 3 + ("ab" 2 + 1) + (number 5 -> 2, + 1)
    assert item_size({"l": {"L": [{"S": "ab"}, {"N": "5"}]}}) == 1 + 3 + 3 + 3
    # map: 3 + (name "k" 1 + "ab" 2 + 1); nested map: 3 + (name "x" 1 + BOOL 1 + 1)
    assert item_size({"m": {"M": {"k": {"S": "ab"}}}}) == 1 + 3 + 4
    nested = {"m": {"M": {"in": {"M": {"x": {"BOOL": False}}}}}}
    assert item_size(nested) == 1 + 3 + (2 + (3 + 3) + 1)


def test_sets_sum_their_elements() -> None:
    assert value_size({"SS": ["a", "bc"]}) == 3
    assert value_size({"NS": ["1", "12345"]}) == 2 + 4
    assert value_size({"BS": [b"ab", b"c"]}) == 3


def test_no_item_is_zero_bytes_and_bad_values_are_typed_errors() -> None:
    assert item_size(None) == 0
    assert item_size({}) == 0
    for bad in ({"X": "1"}, {"N": "abc"}, {"S": "a", "N": "1"}, {"B": "!!"}):
        with pytest.raises(ItemSizeError):
            value_size(bad)


# -- read and write units: AWS's examples ---------------------------------------------------


def test_read_examples() -> None:
    assert read_units(3584, "strong") == 1  # 3.5 KB -> 4 KB
    assert read_units(3500, "strong") == 1  # "a 3,500-byte item ... same as 4 KB"
    assert read_units(10 * KB, "strong") == 3  # 10 KB -> 12 KB
    assert read_units(8 * KB, "strong") == 2
    assert read_units(8 * KB, "eventual") == 1
    assert read_units(8 * KB, "transactional") == 4
    assert read_units(3 * KB, "strong") == 1  # "3 KB / 4 KB = 0.75, or 1"
    assert read_units(80 * KB, "eventual") == 10
    assert read_units(int(40.8 * KB), "strong") == 11  # Query of 40.8 KB -> 44 KB
    assert read_units(1500 * 64, "strong") == 24  # Query of 1,500 x 64 bytes: 96 KB
    assert batch_read_units([int(1.5 * KB), int(6.5 * KB)], "strong") == 3  # 4 KB + 8 KB
    assert batch_read_units([500] * 3, "transactional") == 6  # transaction, three 500-byte
    assert read_units(0, "strong") == 1  # a missing item still costs a read
    assert read_units(8 * 2000, "eventual") == 2  # GSI query: 8 x 2,000 bytes


def test_write_examples() -> None:
    assert write_units(500) == 1
    assert write_units(512) == 1
    assert write_units(KB) == 1
    assert write_units(KB + 1) == 2
    assert write_units(int(1.6 * KB)) == 2  # put or delete of 1.6 KB -> 2 KB
    # BatchWriteItem of 500 bytes and 3.5 KB: each rounded alone, 1 KB + 4 KB
    assert write_units(500) + write_units(int(3.5 * KB)) == 5
    # a transaction writing three 500-byte items: 6 units
    assert sum(write_units(500, transactional=True) for _ in range(3)) == 6


def test_put_and_update_count_the_larger_of_before_and_after() -> None:
    small, big = _blob(900), _blob(2 * KB + 10)
    assert item_write_units(None, small) == 1  # new item
    assert item_write_units(small, big) == 3  # grows
    assert item_write_units(big, small) == 3  # shrinks: the larger still counts
    assert item_write_units(big, None) == 3  # delete: the deleted item
    assert item_write_units(None, None) == 1  # delete of nothing: 1
    assert item_write_units(small, big, transactional=True) == 6


def test_failed_conditional_write_costs_the_item_there() -> None:
    spec = TableSpec("t", ("pk",))
    one_kb = {"pk": {"S": "a"}, **_blob(KB - 3)}
    two_kb = {"pk": {"S": "a"}, **_blob(2 * KB - 3)}
    assert item_size(one_kb) == KB
    assert write_cost(spec, one_kb, _blob(5 * KB), applied=False).total == 1
    assert write_cost(spec, two_kb, _blob(5 * KB), applied=False).total == 2
    assert write_cost(spec, None, _blob(5 * KB), applied=False).total == 1  # no item: 1


# -- global secondary indexes: GameScores / GameTitleIndex ------------------------------------

GAME_SCORES = TableSpec.from_description(
    {
        "TableName": "GameScores",
        "KeySchema": [
            {"AttributeName": "GameTitle", "KeyType": "RANGE"},
            {"AttributeName": "UserId", "KeyType": "HASH"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": "GameTitleIndex",
                "KeySchema": [
                    {"AttributeName": "GameTitle", "KeyType": "HASH"},
                    {"AttributeName": "TopScore", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["Wins"]},
            }
        ],
    }
)
INDEX = GAME_SCORES.indexes[0]


def _score(top: int | None = None, wins: int = 3, losses: int = 1) -> dict[str, dict[str, str]]:
    item = {
        "UserId": {"S": "101"},
        "GameTitle": {"S": "Meteor Blasters"},
        "Wins": {"N": str(wins)},
        "Losses": {"N": str(losses)},
    }
    if top is not None:
        item["TopScore"] = {"N": str(top)}
    return item


def test_table_spec_reads_a_description() -> None:
    assert GAME_SCORES.key == ("UserId", "GameTitle")  # hash first
    expected = IndexSpec("GameTitleIndex", ("GameTitle", "TopScore"), "INCLUDE", ("Wins",))
    assert GAME_SCORES.indexes == (expected,)


def test_gsi_write_rules() -> None:
    k = GAME_SCORES.key
    assert index_write_units(None, _score(), INDEX, k) == 0  # no TopScore: not in the index
    assert index_write_units(None, _score(5000), INDEX, k) == 1  # enters: one put
    assert index_write_units(_score(), _score(5000), INDEX, k) == 1  # attribute defined
    assert index_write_units(_score(5000), _score(6000), INDEX, k) == 2  # key A -> B
    assert index_write_units(_score(5000), _score(), INDEX, k) == 1  # key attribute deleted
    assert index_write_units(_score(), _score(losses=9), INDEX, k) == 0  # never in the index
    assert index_write_units(_score(5000), _score(5000, wins=4), INDEX, k) == 1  # projected
    # Losses is not projected: the index entry is the same, the index is not written
    assert index_write_units(_score(5000), _score(5000, losses=9), INDEX, k) == 0
    assert index_write_units(_score(5000), None, INDEX, k) == 1  # item deleted


def test_gsi_entry_size_is_the_projection() -> None:
    keys_only = IndexSpec("by_title", ("GameTitle",), "KEYS_ONLY")
    big = {**_score(5000), "Blob": {"S": "x" * 3000}}
    # ALL projects the 3 KB blob (3 units); KEYS_ONLY only the keys (1 unit)
    assert index_write_units(None, big, IndexSpec("all", ("GameTitle",)), GAME_SCORES.key) == 3
    assert index_write_units(None, big, keys_only, GAME_SCORES.key) == 1


def test_write_cost_adds_table_and_indexes() -> None:
    cost = write_cost(GAME_SCORES, _score(5000), _score(6000))
    assert (cost.table_units, dict(cost.index_units), cost.total) == (1, {"GameTitleIndex": 2}, 3)
    tx = write_cost(GAME_SCORES, None, _score(5000), transactional=True)
    assert (tx.table_units, dict(tx.index_units)) == (2, {"GameTitleIndex": 1})
    refused = write_cost(GAME_SCORES, _score(5000), _score(6000), applied=False)
    assert (refused.table_units, dict(refused.index_units)) == (1, {})
