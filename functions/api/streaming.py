"""Streamed responses: the format a Lambda function streams to API Gateway, in one place.

A route whose table entry says ``streaming`` (functions/common/routes.py) is integrated with
API Gateway's response streaming (``responseTransferMode: STREAM``): API Gateway invokes
the function with ``InvokeWithResponseStream`` and reads what it streams as an *integration
response*: a JSON prelude ``{"statusCode", "headers", "multiValueHeaders"}``, eight NUL
bytes, then the body, passed to the client as it arrives (AWS documentation, "Set up a
Lambda proxy integration with payload response streaming in API Gateway").

The handler answers every route with a Lambda proxy response (a dict). Its ``body`` is a
string, or, for a streamed answer, an iterator of strings (or bytes), one per piece as the
model produces it. :func:`integration_response` turns either into the integration-response
bytes; the function's runtime (:mod:`functions.api.runtime`) posts them to Lambda's Runtime
API chunk by chunk, and the local gateway (tollgate/local/gateway.py) reads them back with
:func:`read_integration_response`, as API Gateway does: same bytes, same code path.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

SEPARATOR: Final = b"\x00" * 8
CONTENT_TYPE: Final = "application/vnd.awslambda.http-integration-response"


def is_streamed(result: Any) -> bool:
    """True when a proxy response's body is an iterator (an answer still being produced)."""
    body = result.get("body") if isinstance(result, dict) else None
    return body is not None and not isinstance(body, str | bytes)


def _bytes(piece: str | bytes) -> bytes:
    return piece.encode("utf-8") if isinstance(piece, str) else piece


def integration_response(result: dict[str, Any]) -> Iterator[bytes]:
    """The bytes of ``result`` in the streaming integration-response format, one item per
    piece (never an empty one: a zero-length chunk would end a chunked transfer). Closing
    this iterator closes the body's (the client went away)."""
    prelude: dict[str, Any] = {"statusCode": int(result["statusCode"])}
    for name in ("headers", "multiValueHeaders", "cookies"):
        if result.get(name):
            prelude[name] = result[name]
    yield json.dumps(prelude, separators=(",", ":")).encode("utf-8") + SEPARATOR
    body = result.get("body")
    if body is None or body == "":
        return
    if isinstance(body, str | bytes):
        if result.get("isBase64Encoded") and isinstance(body, str):
            yield base64.b64decode(body)
        else:
            yield _bytes(body)
        return
    pieces = iter(body)
    try:
        for piece in pieces:
            data = _bytes(piece)
            if data:
                yield data
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()


@dataclass
class StreamedResponse:
    """An integration response as API Gateway reads it: status and headers from the
    prelude, the body still arriving."""

    status: int
    headers: list[tuple[str, str]]
    body: Iterator[bytes]


class MalformedIntegrationResponse(ValueError):
    """The function streamed something other than prelude + separator (API Gateway: 502)."""


def read_integration_response(chunks: Iterable[bytes]) -> StreamedResponse:
    """Read the prelude (up to the separator) and hand back the rest as it arrives."""
    source = iter(chunks)
    buffered = b""
    while SEPARATOR not in buffered:
        try:
            buffered += next(source)
        except StopIteration:
            _close(source)
            raise MalformedIntegrationResponse("no prelude separator") from None
        if len(buffered) > 64 * 1024:
            _close(source)
            raise MalformedIntegrationResponse("prelude too long")
    head, _, rest = buffered.partition(SEPARATOR)
    try:
        prelude = json.loads(head)
        status = int(prelude["statusCode"])
    except (ValueError, KeyError, TypeError):
        _close(source)
        raise MalformedIntegrationResponse("unreadable prelude") from None
    headers = [(str(k), str(v)) for k, v in (prelude.get("headers") or {}).items()]
    for name, values in (prelude.get("multiValueHeaders") or {}).items():
        headers = [(k, v) for k, v in headers if k.lower() != str(name).lower()]
        headers += [(str(name), str(v)) for v in values]

    def body() -> Iterator[bytes]:
        try:
            if rest:
                yield rest
            for chunk in source:
                if chunk:
                    yield chunk
        finally:
            _close(source)

    return StreamedResponse(status, headers, body())


def _close(source: Iterator[bytes]) -> None:
    close = getattr(source, "close", None)
    if close is not None:
        close()
