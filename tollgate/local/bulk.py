"""Keys in bulk, for the benchmarks and the soak: the very items ``KeyService`` writes for a
key (``Secret``, ``Key``, the gate's key item; no audit record), written with
``BatchWriteItem``, so a tenant can be given 100,000 keys in minutes on moto."""

from __future__ import annotations

from typing import Any


def _batch(client: Any, table: str, items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), 25):
        request = {table: [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]}
        for _ in range(10):
            resp = client.batch_write_item(RequestItems=request)
            request = resp.get("UnprocessedItems") or {}
            if not request:
                break


def bulk_client() -> Any:
    """A DynamoDB client for bulk writes: patient (moto serves one request at a time, and a
    batch of 25 puts on a table with a stream can take seconds on a loaded machine)."""
    import boto3
    import botocore.config

    return boto3.client(
        "dynamodb",
        config=botocore.config.Config(read_timeout=120, retries={"max_attempts": 10}),
    )


def seed_keys(client: Any, tenant_id: str, n: int) -> None:
    """``n`` keys for ``tenant_id`` (every second one revoked), as KeyService writes them."""
    from functions.common import keyformat
    from functions.common.config import TableNames
    from functions.gate import items as it

    names = TableNames.from_env()
    scopes = {"L": [{"S": "inference:invoke"}]}
    secrets, keys, gates = [], [], []
    for i in range(n):
        key_id = keyformat.new_key_id()
        revoked = i % 2 == 1
        common = {
            "key_id": {"S": key_id}, "tenant_id": {"S": tenant_id},
            "environment": {"S": "live"}, "principal": {"S": f"agent-{i}"}, "scopes": scopes,
            "created_at": {"S": "2026-12-01T00:00:00Z"},
        }  # fmt: skip
        secret = keyformat.generate("live")
        secrets.append({**common, "secret_hash": {"S": keyformat.hash_secret(secret)},
                        "serial": {"N": "1"}})  # fmt: skip
        keys.append({**common, "status": {"S": "revoked" if revoked else "active"},
                     "secret_serial": {"N": "1"}})  # fmt: skip
        gates.append({
            **it.key_address(key_id), it.STATUS: {"S": "revoked" if revoked else "active"},
            it.WINDOW: {"N": "0"}, it.COUNT: {"N": "0"}, it.SERIAL: {"N": "1"},
            it.GRACE: {"N": "0"}, it.TENANT: {"S": tenant_id},
        })  # fmt: skip
    _batch(client, names.secrets, secrets)
    _batch(client, names.keys, keys)
    _batch(client, names.gate, gates)
