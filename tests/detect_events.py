"""Helpers for the detector's and responders' tests (a plain module, no fixtures): usage
items, Lambda-shaped stream events, CloudWatch Logs subscription events, a Lambda context,
an in-memory event publisher, and GitHub-style signing."""

from __future__ import annotations

import base64
import gzip
import json
import threading
import uuid
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from functions.common import ddb

SHARD = "shardId-00000001700000000000-detect01"
STREAM_ARN = (
    "arn:aws:dynamodb:us-east-1:123456789012:table/tollgate-usage/stream/2026-11-01T00:00:00.000"
)


class LambdaContext:
    function_name = "tollgate-detector"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:tollgate-detector"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def usage_item(
    key_id: str,
    ts_ms: int,
    *,
    tenant: str = "acme",
    tokens: int = 100,
    ip: str = "198.51.100.7",
    plan: str | None = "starter",
    principal: str = "svc",
    env: str = "live",
    cost: int = 0,
) -> dict[str, Any]:
    prompt = tokens * 7 // 10
    item: dict[str, Any] = {
        "request_id": f"req-{uuid.uuid4().hex}",
        "ts": ts_ms,
        "tenant_id": tenant,
        "key_id": key_id,
        "principal": principal,
        "environment": env,
        "operation": "chat.completions",
        "model": "tollgate-echo",
        "prompt_tokens": prompt,
        "completion_tokens": tokens - prompt,
        "cost_micros": cost,
        "status": "ok",
        "latency_ms": 5,
        "source_ip": ip,
        "user_agent": "pytest",
    }
    if plan is not None:
        item["plan"] = plan
    return item


class Stream:
    """Numbers stream records like one shard of a DynamoDB stream."""

    def __init__(self, shard: str = SHARD, start: int = 100_000_000_000_000_000_000) -> None:
        self.shard = shard
        self.seq = start

    def record(self, item: Mapping[str, Any], event_name: str = "INSERT") -> dict[str, Any]:
        self.seq += 1
        image = {k: ddb.to_ddb(v) for k, v in item.items()}
        return {
            "eventID": uuid.uuid4().hex,
            "eventName": event_name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "eventSourceARN": STREAM_ARN,
            "dynamodb": {
                "ApproximateCreationDateTime": 1_793_491_200,
                "Keys": {"request_id": image.get("request_id", {"S": "x"})},
                "NewImage": image,
                "SequenceNumber": str(self.seq),
                "SizeBytes": 200,
                "StreamViewType": "NEW_IMAGE",
            },
        }

    def event(self, records: Iterable[dict[str, Any]]) -> dict[str, Any]:
        return {
            "Records": list(records),
            "shardId": self.shard,
            "eventSourceARN": STREAM_ARN,
            "window": {"start": "2026-11-01T00:00:00Z", "end": "2026-11-01T00:15:00Z"},
            "state": {},
            "isFinalInvokeForWindow": False,
            "isWindowTerminatedEarly": False,
        }

    def batch(self, items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        return self.event(self.record(i) for i in items)


def logs_event(lines: Iterable[Mapping[str, Any]], ts_ms: int) -> dict[str, Any]:
    """A CloudWatch Logs subscription event carrying ``lines`` (access-log JSON)."""
    data = {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": "/aws/apigateway/access",
        "logStream": "stream",
        "subscriptionFilters": ["refusals"],
        "logEvents": [
            {"id": str(i), "timestamp": ts_ms, "message": json.dumps(line)}
            for i, line in enumerate(lines)
        ],
    }
    packed = base64.b64encode(gzip.compress(json.dumps(data).encode())).decode()
    return {"awslogs": {"data": packed}}


class Published:
    """An in-memory :class:`~functions.respond.events.EventPublisher`."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.bus = "memory"

    def publish(self, detail_type: str, detail: Mapping[str, Any]) -> bool:
        from functions.respond.events import sanitize

        self.events.append((detail_type, sanitize(detail)))
        return True

    def of(self, detail_type: str) -> list[dict[str, Any]]:
        return [d for t, d in self.events if t == detail_type]


# -- GitHub secret scanning ------------------------------------------------------------
class Signer:
    """A P-256 key pair playing GitHub: its public key list and its signatures."""

    def __init__(self, identifier: str = "test-key-1") -> None:
        from cryptography.hazmat.primitives.asymmetric import ec

        self.identifier = identifier
        self.private = ec.generate_private_key(ec.SECP256R1())

    def public_pem(self) -> str:
        from cryptography.hazmat.primitives import serialization

        return (
            self.private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def sign(self, body: bytes) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        return base64.b64encode(self.private.sign(body, ec.ECDSA(hashes.SHA256()))).decode()

    def key_list(self) -> bytes:
        entry = {"key_identifier": self.identifier, "key": self.public_pem(), "is_current": True}
        return json.dumps({"public_keys": [entry]}).encode()


class KeyServer:
    """A local HTTP server serving a key list (``documents`` may change; ``hits`` counts)."""

    def __init__(self, document: bytes) -> None:
        self.document = document
        self.hits = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(owner.document)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/meta/public_keys/secret_scanning"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def webhook_event(
    body: bytes | str, headers: Mapping[str, str] | None = None, *, b64: bool = False
) -> dict[str, Any]:
    """An API Gateway proxy event for ``POST /webhooks/github/secret-scanning``."""
    raw = body.encode() if isinstance(body, str) else body
    return {
        "resource": "/webhooks/github/secret-scanning",
        "path": "/webhooks/github/secret-scanning",
        "httpMethod": "POST",
        "headers": dict(headers or {}),
        "multiValueHeaders": {k: [v] for k, v in (headers or {}).items()},
        "queryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "resourcePath": "/webhooks/github/secret-scanning",
            "httpMethod": "POST",
            "stage": "prod",
            "identity": {"sourceIp": "192.30.252.1", "userAgent": "GitHub-Hookshot"},
        },
        "body": base64.b64encode(raw).decode() if b64 else raw.decode("utf-8", "replace"),
        "isBase64Encoded": b64,
    }
