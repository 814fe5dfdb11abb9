"""Invariant 6: a secret is shown once, at creation (create, delegate, rotate), and neither
it nor its hash appears in any other CLI output, log record, audit record or stored item
other than the Secret item's key."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from functions.common import keyformat
from functions.common.config import TABLE_KINDS, TableNames
from functions.keys import KeyService
from tests.integration.conftest import Result, Run

pytestmark = pytest.mark.usefixtures("dynamodb")


def test_no_secret_or_hash_leaks_anywhere(
    cli: Run, dynamodb: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="tollgate")
    one_time: list[tuple[Result, str]] = []  # (output that may show this secret, the secret)
    other: list[Result] = []

    def issue(*args: str, json_out: bool = True) -> dict[str, Any] | None:
        result = cli(*args, json=json_out).ok()
        if not json_out:
            secret = next(w for w in result.out.split() if keyformat.parse(w))
            one_time.append((result, secret))
            return None
        data = result.json
        one_time.append((result, data["secret"]))
        return dict(data)

    def run(*args: str, **kwargs: Any) -> Result:
        result = cli(*args, **kwargs)
        other.append(result)
        return result

    run("plans", "create", "starter")
    run("tenants", "create", "acme", "--plan", "starter")
    parent = issue("keys", "create", "--tenant", "acme")
    assert parent is not None
    issue("keys", "create", "--tenant", "acme", "--env", "test", json_out=False)
    child = issue(
        "keys", "delegate", parent["key_id"], "--principal", "agent", "--token-budget", "9"
    )
    assert child is not None
    issue("keys", "rotate", parent["key_id"])
    issue("keys", "rotate", parent["key_id"], json_out=False)
    KeyService().suspend(
        child["key_id"], reason=f"evidence {child['secret']}", actor="detector",
        evidence={"sample": child["secret"]},
    )  # fmt: skip
    secrets = [s for _, s in one_time]
    hashes = [keyformat.hash_secret(s) for s in secrets]

    for args in (("--json",), ()):
        json_out = bool(args)
        run("keys", "list", "--tenant", "acme", json=json_out)
        run("keys", "show", parent["key_id"], json=json_out)
        run("audit", json=json_out)
        run("tenants", "show", "acme", json=json_out)
    run("keys", "show", parent["secret"])  # a secret where a key id belongs
    run("keys", "revoke", parent["secret"], "--reason", "x")
    run("keys", "revoke", "--secret", parent["secret"][:-2] + "zz", "--reason", "mangled")
    run("keys", "revoke", "--secret", keyformat.generate("live"), "--reason", "unknown")
    run("keys", "reinstate", child["key_id"], "--reason", f"leaked as {child['secret']}")
    run("keys", "revoke", "--secret", secrets[-1], "--reason", f"leaked: {secrets[-1]}")
    run("keys", "revoke", "--secret", "-", "--reason", "stdin", input=secrets[0])
    run("audit", "--key", parent["key_id"])

    def leaks(text: str, allowed: str | None = None) -> list[str]:
        found = [s for s in secrets if s in text and s != allowed]
        found += [h for h in hashes if h in text]
        return found

    for result, secret in one_time:
        assert not leaks(result.out + result.err, allowed=secret)
        assert (result.out + result.err).count(secret) == 1
    for result in other:
        assert not leaks(result.out + result.err), result
    for record in caplog.records:
        assert not leaks(record.getMessage()), record.getMessage()
    names = TableNames()
    for kind in TABLE_KINDS:
        items = dynamodb.scan(TableName=getattr(names, kind))["Items"]
        text = json.dumps(items)
        if kind == "secrets":  # the hash is the Secret item's key, and nothing else
            assert {i["secret_hash"]["S"] for i in items} == set(hashes)
            for item in items:
                assert not leaks(json.dumps({k: v for k, v in item.items() if k != "secret_hash"}))
            assert not [s for s in secrets if s in text]
        else:
            assert not leaks(text), kind
    audit = cli("audit").ok().json
    assert any("[redacted]" in r["reason"] for r in audit)
    assert len(audit) > 8
