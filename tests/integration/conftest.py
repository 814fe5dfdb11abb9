"""Fixtures for the CLI tests: run ``tollgate`` in-process, snapshot every table."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from functions.common import ddb
from functions.common.config import TABLE_KINDS, TableNames
from functions.usage import handler as usage_handler
from tests.usage_support import Context, lambda_event, stream_record


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)

    def ok(self) -> Result:
        assert self.code == 0, f"exit {self.code}: {self.err}"
        return self


Run = Callable[..., Result]


@pytest.fixture
def cli(
    dynamodb: object, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Run:
    """``cli("keys", "list", "--tenant", "t")`` runs the CLI on fresh tables; ``input=``
    feeds stdin. ``--json`` is added in front unless ``json=False``."""
    from tollgate.cli import main

    monkeypatch.setenv("TOLLGATE_ACTOR", "test:operator")

    def run(*args: str, input: str | None = None, json: bool = True) -> Result:
        capsys.readouterr()  # drop anything printed before
        if input is not None:
            monkeypatch.setattr(sys, "stdin", io.StringIO(input))
        code = main([*(["--json"] if json else []), *args])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


@pytest.fixture
def snapshot(dynamodb: Any) -> Callable[[], dict[str, list[str]]]:
    """Every item of every table, canonicalised: compare before/after to prove no write."""
    names = TableNames()

    def take() -> dict[str, list[str]]:
        state = {}
        for kind in TABLE_KINDS:
            items = dynamodb.scan(TableName=getattr(names, kind), ConsistentRead=True)["Items"]
            state[kind] = sorted(json.dumps(i, sort_keys=True) for i in items)
        return state

    return take


@pytest.fixture
def bad_input(cli: Run, snapshot: Callable[[], dict[str, list[str]]]) -> Callable[..., Result]:
    """Run a command that must be refused as bad input: exit 2, one line on stderr,
    nothing on stdout, no table changed."""

    def check(*args: str, **kwargs: Any) -> Result:
        before = snapshot()
        result = cli(*args, **kwargs)
        assert result.code == 2, (result.code, result.out, result.err)
        assert result.out == ""
        lines = result.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.err
        assert "Traceback" not in result.err
        assert snapshot() == before
        return result

    return check


@pytest.fixture
def tenant(cli: Run) -> str:
    """A ``starter`` plan (all scopes) and an ``acme`` tenant on it."""
    cli("plans", "create", "starter", "--requests-per-minute", "60").ok()
    cli("tenants", "create", "acme", "--plan", "starter").ok()
    return "acme"


@pytest.fixture
def key(cli: Run, tenant: str) -> dict[str, Any]:
    """A live key of ``acme`` expiring in 30 days (the create output, secret included)."""
    return dict(cli("keys", "create", "--tenant", tenant, "--expires-in", "30d").ok().json)


@pytest.fixture
def acme(cli: Run) -> str:
    cli("plans", "create", "gold", "--price-per-1k-prompt", "0.002",
        "--price-per-1k-completion", "0.006").ok()  # fmt: skip
    cli("tenants", "create", "acme", "--plan", "gold").ok()
    return "acme"


@pytest.fixture
def aggregate_events(dynamodb: Any) -> Iterator[Any]:
    """Put usage events into the usage table and run the real aggregator on their records."""
    ddb.reset_client()
    usage_handler.use_store(None)
    seq = iter(range(5_000_000_000_000_000_000_000, 6_000_000_000_000_000_000_000))

    def put(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for item in items:
            dynamodb.put_item(
                TableName=TableNames().usage,
                Item={k: ddb.to_ddb(v) for k, v in item.items() if v is not None},
            )
        records = [stream_record(item, next(seq)) for item in items]
        response = usage_handler.handler(lambda_event(records), Context())
        assert response["batchItemFailures"] == []
        return items

    yield put
    usage_handler.use_store(None)
