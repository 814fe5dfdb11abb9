"""DynamoDB's item-size and capacity-unit rules, as AWS documents them: pure, no I/O.

Used by the write meter of the embedded moto server (:mod:`tollgate.local.aws`) and by the
benchmarks, so that "write units per request" is computed by one function, tested against
AWS's own examples (``tests/unit/test_capacity.py``). docs/capacity.md, "How write units are
measured", says what is counted and what is assumed.

Item size (AWS, "DynamoDB item sizes and formats"): the sum over the attributes of the
attribute name's UTF-8 bytes plus the value's size, where

* a string is its UTF-8 bytes;
* a number is "variable length, with up to 38 significant digits. Leading and trailing
  zeroes are trimmed. The size of a number is approximately (length of attribute name) +
  (1 byte per two significant digits) + (1 byte)": here ``ceil(digits / 2) + 1`` (the real
  encoding can differ from this by a byte, e.g. for a negative number; AWS says
  "approximately");
* a binary is its raw bytes (not its base64 text);
* a null or a boolean is 1 byte;
* a list or a map is 3 bytes + its elements' sizes + 1 byte per element (a map element also
  counts its name's UTF-8 bytes);
* a set is the sum of its elements' sizes (AWS documents no set overhead; none is added).

Capacity (AWS, "DynamoDB read and write operations" and "Managing throughput settings on
provisioned tables"): a write costs one write unit per started 1 KB (1,024 bytes) of the item,
at least one; ``PutItem`` and ``UpdateItem`` count the larger of the item before and after,
``DeleteItem`` the deleted item; ``BatchWriteItem`` rounds each item on its own; a failed
conditional write costs as much as writing the item that is there (1 unit if there is none).
A transactional write costs twice ("one to prepare the transaction and one to commit", AWS,
"Amazon DynamoDB Transactions: How It Works"), failed or not. A read costs one unit per started
4 KB when strongly consistent, half that when eventually consistent, twice that in a
transaction.

Indexes (AWS, "Global secondary indexes", "Write capacity units"): a write that touches an
index costs that index write units by the size of the *index entry* (the projected item):
a put when the item enters the index, a delete when it leaves, a delete **and** a put when an
index key attribute changes, one write when only projected attributes change, nothing when the
entry is the same before and after (or the item is in the index neither before nor after).
Index writes are counted once even in a transaction (the index is updated asynchronously after
the commit; AWS's "two underlying writes" are of the items in the transaction).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal

KB: Final = 1024
WRITE_UNIT_BYTES: Final = KB  # one write unit: one write of up to 1 KB
READ_UNIT_BYTES: Final = 4 * KB  # one read unit: one strongly consistent read of up to 4 KB
MAX_ITEM_BYTES: Final = 400 * KB  # DynamoDB's item size limit

# A value in DynamoDB's JSON form ({"S": "x"}, {"N": "1"}, {"M": {...}}, ...) and an item.
AttributeValue = Mapping[str, Any]
Item = Mapping[str, AttributeValue]
Consistency = Literal["eventual", "strong", "transactional"]


class ItemSizeError(ValueError):
    """A value that is not in DynamoDB's JSON form (``{"S": ...}``, ``{"N": ...}``, ...)."""


def _utf8(text: str) -> int:
    return len(text.encode("utf-8"))


def _binary(value: Any) -> int:
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value)
    if isinstance(value, str):  # on the wire a binary is base64 text; its raw bytes count
        try:
            return len(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            raise ItemSizeError(f"binary value is not base64: {value[:20]!r}") from None
    raise ItemSizeError(f"binary value of type {type(value).__name__}")


def number_size(text: str | int | float | Decimal) -> int:
    """Bytes of a number's value: ``ceil(significant digits / 2) + 1`` (AWS's rule)."""
    try:
        digits = Decimal(str(text)).as_tuple().digits
    except InvalidOperation:
        raise ItemSizeError(f"not a number: {str(text)[:40]!r}") from None
    significant = "".join(map(str, digits)).strip("0")
    return (len(significant) + 1) // 2 + 1


def value_size(value: AttributeValue) -> int:
    """Bytes of one value (without its attribute name)."""
    if not isinstance(value, Mapping) or len(value) != 1:
        raise ItemSizeError(f"not a DynamoDB value: {str(value)[:60]}")
    ((kind, inner),) = value.items()
    if kind == "S":
        return _utf8(inner)
    if kind == "N":
        return number_size(inner)
    if kind == "B":
        return _binary(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in inner)
    if kind == "M":
        return 3 + sum(_utf8(k) + value_size(v) + 1 for k, v in inner.items())
    if kind == "SS":
        return sum(_utf8(v) for v in inner)
    if kind == "NS":
        return sum(number_size(v) for v in inner)
    if kind == "BS":
        return sum(_binary(v) for v in inner)
    raise ItemSizeError(f"unknown DynamoDB type {kind!r}")


def attribute_size(name: str, value: AttributeValue) -> int:
    return _utf8(name) + value_size(value)


def item_size(item: Item | None) -> int:
    """Bytes of an item by DynamoDB's rules (0 for no item)."""
    if not item:
        return 0
    return sum(attribute_size(name, value) for name, value in item.items())


def _blocks(size: int, block: int) -> int:
    return max(1, -(-size // block))


def write_units(size: int, *, transactional: bool = False) -> int:
    """Write units of one write of an item of ``size`` bytes (at least 1; x2 in a transaction)."""
    return _blocks(size, WRITE_UNIT_BYTES) * (2 if transactional else 1)


def read_units(size: int, consistency: Consistency = "eventual") -> float:
    """Read units of reading ``size`` bytes in one read (a GetItem's item, or a Query's total)."""
    blocks = _blocks(size, READ_UNIT_BYTES)
    if consistency == "eventual":
        return blocks / 2
    if consistency == "strong":
        return float(blocks)
    return 2.0 * blocks


def batch_read_units(sizes: Iterable[int], consistency: Consistency = "eventual") -> float:
    """BatchGetItem: each item rounded up to 4 KB on its own, then summed."""
    return sum(read_units(s, consistency) for s in sizes)


def item_write_units(
    before: Item | None, after: Item | None, *, transactional: bool = False
) -> int:
    """Write units on the table of one item write: the larger of the item before and after.

    Put: ``before`` is the replaced item (or None). Update: the item before and after.
    Delete: ``after`` is None. A failed conditional write: ``after`` is ``before``.
    """
    return write_units(max(item_size(before), item_size(after)), transactional=transactional)


@dataclass(frozen=True)
class IndexSpec:
    """A secondary index: its key attributes and what it projects."""

    name: str
    key: tuple[str, ...]  # partition key, then sort key if any
    projection: str = "ALL"  # ALL | KEYS_ONLY | INCLUDE
    non_key: tuple[str, ...] = ()

    @classmethod
    def from_description(cls, index: Mapping[str, Any]) -> IndexSpec:
        projection = index.get("Projection") or {}
        return cls(
            name=index["IndexName"],
            key=tuple(k["AttributeName"] for k in _ordered(index["KeySchema"])),
            projection=projection.get("ProjectionType", "ALL"),
            non_key=tuple(projection.get("NonKeyAttributes") or ()),
        )


@dataclass(frozen=True)
class TableSpec:
    """A table's key and its secondary indexes (what write costs depend on)."""

    name: str
    key: tuple[str, ...]
    indexes: tuple[IndexSpec, ...] = ()

    @classmethod
    def from_description(cls, table: Mapping[str, Any]) -> TableSpec:
        """From a ``DescribeTable`` ``Table`` (or ``CreateTable`` ``TableDescription``)."""
        indexes = [
            IndexSpec.from_description(i)
            for i in (
                *(table.get("GlobalSecondaryIndexes") or ()),
                *(table.get("LocalSecondaryIndexes") or ()),
            )
        ]
        return cls(
            name=table["TableName"],
            key=tuple(k["AttributeName"] for k in _ordered(table["KeySchema"])),
            indexes=tuple(indexes),
        )

    def key_of(self, item: Item) -> dict[str, AttributeValue]:
        return {k: item[k] for k in self.key if k in item}


def _ordered(schema: Iterable[Mapping[str, str]]) -> list[Mapping[str, str]]:
    return sorted(schema, key=lambda k: 0 if k["KeyType"] == "HASH" else 1)


def index_entry(item: Item | None, index: IndexSpec, table_key: tuple[str, ...]) -> Item | None:
    """The entry ``item`` has in ``index`` (None: not in the index, a key attribute missing)."""
    if item is None or any(k not in item for k in index.key):
        return None
    if index.projection == "ALL":
        return item
    wanted = {*table_key, *index.key}
    if index.projection == "INCLUDE":
        wanted.update(index.non_key)
    return {k: v for k, v in item.items() if k in wanted}


def index_write_units(
    before: Item | None, after: Item | None, index: IndexSpec, table_key: tuple[str, ...]
) -> int:
    """Write units an item write costs ``index`` (see the module docstring for the rules)."""
    old = index_entry(before, index, table_key)
    new = index_entry(after, index, table_key)
    if old is None and new is None:
        return 0
    if old is None:
        return write_units(item_size(new))  # put into the index
    if new is None:
        return write_units(item_size(old))  # delete from the index
    if any(old[k] != new[k] for k in index.key):
        return write_units(item_size(old)) + write_units(item_size(new))  # delete + put
    if old == new:
        return 0  # the index needs no update
    return write_units(max(item_size(old), item_size(new)))  # projected attributes changed


@dataclass(frozen=True)
class WriteCost:
    """Write units of one item write: on the table, and on each index it touched."""

    table: str
    table_units: int
    index_units: Mapping[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.table_units + sum(self.index_units.values())


def write_cost(
    spec: TableSpec,
    before: Item | None,
    after: Item | None,
    *,
    transactional: bool = False,
    applied: bool = True,
) -> WriteCost:
    """Write units of one item write on ``spec``'s table and indexes.

    ``applied=False``: the write was refused (a failed condition, a cancelled transaction):
    the table is charged for the item that is there, the indexes nothing.
    """
    if not applied:
        after = before
    units = item_write_units(before, after, transactional=transactional)
    per_index = {
        index.name: index_write_units(before, after, index, spec.key) for index in spec.indexes
    }
    return WriteCost(spec.name, units, {k: v for k, v in per_index.items() if v})
