"""The write meter of the embedded moto server: DynamoDB's write units of what a block did.

``with server.metered() as m: ...`` (:meth:`tollgate.local.aws.MotoServer.metered`) records
every DynamoDB request the server serves inside the block: its operation (``m.round_trips``),
the bytes it answered (``m.bytes_returned``), and for every item a write touches, the item
before and after, read from moto's backend directly while the server's lock is held (so
nothing else runs in between), priced by :func:`tollgate.local.capacity.write_cost` on the
table and on each of its indexes (taken from the table's description in moto).

What is charged (docs/capacity.md, "How write units are measured"):

* a write moto answered 200, or one that changed the item anyway (an ``ambiguous`` fault);
* a refused conditional write (``ConditionalCheckFailedException``) and a cancelled
  transaction (``TransactionCanceledException``): the table is charged for the item there,
  as DynamoDB does;
* a request refused by the fault injection (throttled, 500) is not charged: DynamoDB does
  not charge a request it throttled.

``TransactWriteItems`` items (``ConditionCheck`` included) cost twice on the table. PartiQL
writes (``ExecuteStatement``, ``BatchExecuteStatement``, ``ExecuteTransaction``) are counted
as round trips and in ``m.unmetered``, not priced.

Off (no block open), the server pays one attribute test per request: see
:class:`tollgate.local.aws.SerializedApp`.
"""

from __future__ import annotations

import copy
import io
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from tollgate.local.capacity import Item, TableSpec, WriteCost, write_cost

TARGET_PREFIX: Final = "DynamoDB_20120810."
WRITE_OPERATIONS: Final = frozenset(
    {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
)
UNPRICED_WRITES: Final = frozenset(
    {"ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction"}
)
# Refusals DynamoDB still charges write units for.
CHARGED_REFUSALS: Final = ("ConditionalCheckFailedException", "TransactionCanceledException")


@dataclass(frozen=True)
class MeteredWrite:
    """One item written (or refused) by one request."""

    operation: str  # PutItem | UpdateItem | DeleteItem | BatchWriteItem | TransactWriteItems
    action: str  # Put | Update | Delete | ConditionCheck
    table: str
    key: Item
    before: Item | None
    after: Item | None
    applied: bool  # False: refused (failed condition, cancelled transaction)
    transactional: bool
    cost: WriteCost

    @property
    def units(self) -> int:
        return self.cost.total


@dataclass
class Metered:
    """What the server served inside one ``metered()`` block."""

    tables: frozenset[str] | None = None  # only these tables (None: every request)
    writes: list[MeteredWrite] = field(default_factory=list)
    round_trips: Counter[str] = field(default_factory=Counter)  # DynamoDB requests by operation
    bytes_returned: Counter[str] = field(default_factory=Counter)  # response body bytes by op
    unmetered: Counter[str] = field(default_factory=Counter)  # writes not priced (PartiQL)

    @property
    def write_units_total(self) -> int:
        """Write units on every table and index."""
        return sum(w.units for w in self.writes)

    @property
    def by_table(self) -> dict[str, int]:
        """Write units by table, its indexes included."""
        out: Counter[str] = Counter()
        for w in self.writes:
            out[w.table] += w.units
        return dict(out)

    @property
    def by_index(self) -> dict[str, int]:
        """Write units by ``"table"`` (the table alone) and ``"table/index"``."""
        out: Counter[str] = Counter()
        for w in self.writes:
            out[w.table] += w.cost.table_units
            for index, units in w.cost.index_units.items():
                out[f"{w.table}/{index}"] += units
        return dict(out)

    @property
    def requests(self) -> int:
        return sum(self.round_trips.values())

    def wants(self, tables: Iterable[str]) -> bool:
        names = list(tables)
        return self.tables is None or any(t in self.tables for t in names)


@dataclass(frozen=True)
class _Target:
    action: str
    table: str  # moto's name for it (the request may name it by ARN)
    region: str | None
    spec: TableSpec
    key: Item


class WriteMeter:
    """Records what the server serves while at least one ``recording()`` block is open.

    Runs inside the server's lock (:class:`tollgate.local.aws.SerializedApp`); ``lock`` is
    that lock, taken to open and close a block so that no request is half recorded.
    """

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self._sinks: list[Metered] = []
        self.on = False  # read on every request: a plain attribute

    @contextmanager
    def recording(self, tables: Iterable[str] | None = None) -> Iterator[Metered]:
        sink = Metered(frozenset(tables) if tables is not None else None)
        with self._lock:
            self._sinks.append(sink)
            self.on = True
        try:
            yield sink
        finally:
            with self._lock:
                self._sinks.remove(sink)
                self.on = bool(self._sinks)

    # -- inside the server's lock ----------------------------------------------------------
    def observe(
        self,
        app: Callable[..., Iterable[bytes]],
        environ: dict[str, Any],
        start_response: Callable[..., Any],
    ) -> list[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith(TARGET_PREFIX):
            return [b"".join(app(environ, start_response))]
        operation = target[len(TARGET_PREFIX) :]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
        environ["CONTENT_LENGTH"] = str(len(body))
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            doc = {}
        doc = doc if isinstance(doc, dict) else {}
        region = _region(environ)
        targets = _targets(operation, doc, region) if operation in WRITE_OPERATIONS else []
        befores = [_read(t) for t in targets]

        status: list[str] = []

        def capture(line: str, headers: Any, *exc_info: Any) -> Any:
            status.append(line)
            return start_response(line, headers, *exc_info)

        out = b"".join(app(environ, capture))
        afters = [_read(t) for t in targets]
        ok = bool(status) and status[0].startswith("200")
        charged_refusal = not ok and _error_type(out).endswith(CHARGED_REFUSALS)
        transactional = operation == "TransactWriteItems"
        writes: list[MeteredWrite] = []
        for t, before, after in zip(targets, befores, afters, strict=True):
            changed = before != after
            if not (ok or changed or charged_refusal):
                continue  # throttled or failed before moto: DynamoDB charges nothing
            applied = (ok or changed) and t.action != "ConditionCheck"
            cost = write_cost(t.spec, before, after, transactional=transactional, applied=applied)
            writes.append(
                MeteredWrite(
                    operation, t.action, t.spec.name, t.key, before, after, applied,
                    transactional, cost,
                )
            )  # fmt: skip
        tables = _tables_named(doc) or [t.spec.name for t in targets]
        for sink in self._sinks:
            if not sink.wants(tables):
                continue
            sink.round_trips[operation] += 1
            sink.bytes_returned[operation] += len(out)
            if operation in UNPRICED_WRITES:
                sink.unmetered[operation] += 1
            sink.writes.extend(w for w in writes if sink.tables is None or w.table in sink.tables)
        return [out]


# -- reading the request and moto's state -------------------------------------------------
def _region(environ: dict[str, Any]) -> str | None:
    """The region of the request's SigV4 credential scope (``Credential=AK/date/region/...``)."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    marker = "Credential="
    at = auth.find(marker)
    if at < 0:
        return None
    parts = auth[at + len(marker) :].split(",")[0].split("/")
    return parts[2] if len(parts) > 2 else None


def _error_type(body: bytes) -> str:
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        return ""
    value = doc.get("__type", "") if isinstance(doc, dict) else ""
    return value if isinstance(value, str) else ""


def _tables_named(doc: dict[str, Any]) -> list[str]:
    names: list[str] = []
    if isinstance(doc.get("TableName"), str):
        names.append(doc["TableName"])
    if isinstance(doc.get("RequestItems"), dict):
        names.extend(doc["RequestItems"])
    for entry in doc.get("TransactItems") or ():
        for action in entry.values() if isinstance(entry, dict) else ():
            if isinstance(action, dict) and isinstance(action.get("TableName"), str):
                names.append(action["TableName"])
    return names


def _find_table(name: str, region: str | None) -> Any | None:
    """moto's table called ``name`` (or with that ARN), in ``region`` if it has one there."""
    from moto.dynamodb.exceptions import ResourceNotFoundException
    from moto.dynamodb.models import dynamodb_backends

    found = None
    for _account, regions in list(dynamodb_backends.items()):
        for backend_region, backend in list(regions.items()):
            try:
                table = backend.get_table(name)
            except ResourceNotFoundException:
                continue  # not in this account and region
            if backend_region == region:
                return table
            found = found or table
    return found


def _target(action: str, table_name: Any, key_or_item: Any, region: str | None) -> _Target | None:
    if not isinstance(table_name, str) or not isinstance(key_or_item, dict):
        return None
    table = _find_table(table_name, region)
    if table is None:
        return None
    spec = TableSpec.from_description(table.describe()["TableDescription"])
    key = spec.key_of(key_or_item)
    if len(key) != len(spec.key):
        return None  # a malformed request: moto refuses it, nothing is written
    return _Target(action, table.name, region, spec, key)


def _targets(operation: str, doc: dict[str, Any], region: str | None) -> list[_Target]:
    found: list[_Target | None] = []
    if operation == "PutItem":
        found.append(_target("Put", doc.get("TableName"), doc.get("Item"), region))
    elif operation in ("UpdateItem", "DeleteItem"):
        action = operation.removesuffix("Item")
        found.append(_target(action, doc.get("TableName"), doc.get("Key"), region))
    elif operation == "BatchWriteItem":
        for table_name, requests in (doc.get("RequestItems") or {}).items():
            for request in requests if isinstance(requests, list) else ():
                if not isinstance(request, dict):
                    continue
                if "PutRequest" in request:
                    item = (request["PutRequest"] or {}).get("Item")
                    found.append(_target("Put", table_name, item, region))
                elif "DeleteRequest" in request:
                    key = (request["DeleteRequest"] or {}).get("Key")
                    found.append(_target("Delete", table_name, key, region))
    elif operation == "TransactWriteItems":
        for entry in doc.get("TransactItems") or ():
            if not isinstance(entry, dict):
                continue
            for action, spec in entry.items():
                if not isinstance(spec, dict):
                    continue
                key = spec.get("Item") if action == "Put" else spec.get("Key")
                found.append(_target(action, spec.get("TableName"), key, region))
    return [t for t in found if t is not None]


def _read(target: _Target) -> Item | None:
    """The item at ``target``'s key in moto, as DynamoDB JSON (a copy), or None.

    The table is looked up again each time: moto undoes a cancelled transaction by putting
    back a copy of its tables, so a table object held across the request would be stale.
    """
    from moto.dynamodb.exceptions import MockValidationException
    from moto.dynamodb.models.dynamo_type import DynamoType

    table = _find_table(target.table, target.region)
    if table is None:
        return None
    hash_name = table.hash_key_attr
    range_name = table.range_key_attr
    try:
        item = table.get_item(
            DynamoType(dict(target.key[hash_name])),
            DynamoType(dict(target.key[range_name])) if range_name else None,
        )
    except (MockValidationException, KeyError):
        return None  # a key moto refuses: the request fails too, nothing is written
    if item is None:
        return None
    attributes: Item = copy.deepcopy(item.to_json()["Attributes"])
    return attributes
