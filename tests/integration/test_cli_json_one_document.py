"""Finding 1 of issue 11: with ``--json``, stdout holds exactly one JSON document for every
command, the revoke paths included.

0.1.0 leaked the revoke function's Powertools INFO lines onto stdout with ``--local`` (the
handler runs in-process), and the suite hid it: ``tests/conftest.py`` sets
``POWERTOOLS_LOG_LEVEL=WARNING`` and the CLI sets nothing. So the ``--local`` runs here are
real processes (``python -m tollgate``) whose environment has no ``POWERTOOLS_*`` variable:
the log level is the one the CLI itself sets. The runs without ``--local`` go in-process
(the ``cli`` fixture, clients pointed at moto by ``AWS_ENDPOINT_URL``).

Every other command puts its global options after the command instead of before it:
both placements are part of the contract (docs/cli.md).
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from functions.keys import KeyService
from tests.integration.conftest import Result, Run
from tollgate.local.aws import MotoServer

LEAKED = ('"level":"INFO"', '"level": "INFO"', "event (no bus configured)")


def one_document(result: Result, where: str) -> Any:
    assert result.code == 0, (where, result.code, result.err)
    try:
        return json.loads(result.out)  # "Extra data" if anything else is on stdout
    except ValueError as exc:
        raise AssertionError(f"{where}: not one JSON document ({exc}):\n{result.out}") from None


@pytest.fixture
def trace(tmp_path: Path) -> str:
    """A small usage trace for ``detect backtest`` (the bench traces take seconds)."""
    path = tmp_path / "small.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for n in range(30):
            event = {
                "ts": 1_793_491_200_000 + n * 1000, "tenant_id": "acme", "key_id": "key_a",
                "environment": "live", "plan": "starter", "status": "ok",
                "prompt_tokens": 10, "completion_tokens": 5, "source_ip": "203.0.113.7",
            }  # fmt: skip
            f.write(json.dumps(event) + "\n")
    return str(path)


Command = tuple[list[str], str | None]  # argv, stdin
PRICE = ["--prompt", "2.5", "--completion", "10", "--cached-prompt", "1.25"]
ECHO_AND_4O = "tollgate-echo,upstream:gpt-4o"
OVERRIDE = "upstream:gpt-4o=2:8:1:8"


def every_command(trace: str) -> list[Command]:
    """Every command of docs/cli.md, on a tenant with keys made here (in-process)."""
    svc = KeyService()
    svc.create_plan("pro", requests_per_minute=60, actor="test")
    svc.create_tenant("acme", plan="pro", actor="test")
    parent, child_parent, leaked, other = (svc.create_key("acme", actor="test") for _ in range(4))
    bot = svc.create_key("acme", principal="bot", actor="test")
    suspended = svc.create_key("acme", actor="test")
    svc.suspend(suspended["key_id"], reason="spike", actor="test:detector")
    gha = "https://token.actions.githubusercontent.com"
    trusted = svc.create_trust_policy("acme", issuer_url=gha, audience_value="tollgate",
                                      subject="repo:acme/*", actor="test")  # fmt: skip
    bound = svc.create_key("acme", allow_cidrs=["10.0.0.0/8"], tags={"team": "a"}, actor="test")
    keyattrs: list[Command] = [  # issue 15: networks, tags, per-key limits
        (["keys", "create", "--tenant", "acme", "--allow-cidr", "10.0.0.0/8,2001:db8::/32",
          "--tag", "team=search", "--tag", "cc=42"], None),
        (["keys", "delegate", bound["key_id"], "--principal", "agent", "--allow-cidr",
          "10.1.0.0/16", "--tag", "job=ci"], None),
        (["keys", "set-limit", bound["key_id"], "--requests-per-minute", "5"], None),
        (["keys", "set-limit", bound["key_id"], "--requests-per-minute", "none"], None),
        (["usage", "--tenant", "acme", "--by", "tag:team"], None),
        (["usage", "--tenant", "acme", "--tag", "team=a"], None),
    ]  # fmt: skip
    return [
        *keyattrs,
        (["plans", "create", "basic", "--spend-per-month", "100.50"], None),
        (["plans", "list"], None),
        (["plans", "show", "pro"], None),
        (["prices", "set", "upstream:gpt-4o", *PRICE], None),
        (["prices", "list"], None),
        (["plans", "create", "priced", "--models", ECHO_AND_4O, "--price", OVERRIDE], None),
        (["tenants", "create", "beta", "--plan", "basic"], None),
        (["tenants", "list"], None),
        (["tenants", "show", "acme"], None),
        (["tenants", "set-plan", "beta", "pro"], None),
        (["tenants", "set-webhook", "acme", "--url", "http://127.0.0.1:9/hooks"], None),
        (["tenants", "notices", "acme"], None),
        (["tenants", "notices", "acme", "--failed", "--period", "2026-11"], None),
        (["tenants", "redrive-notices", "acme"], None),
        (["keys", "create", "--tenant", "acme", "--env", "test"], None),
        (["keys", "delegate", parent["key_id"], "--principal", "sub", "--token-budget", "9"], None),
        (
            ["keys", "delegate", parent["key_id"], "--principal", "s2", "--spend-budget", "2.5"],
            None,
        ),
        (["keys", "list", "--tenant", "acme"], None),
        (["keys", "show", parent["key_id"]], None),
        (["keys", "rotate", parent["key_id"], "--grace", "1h"], None),
        (["keys", "reinstate", suspended["key_id"], "--reason", "false positive"], None),
        (
            [
                "trust",
                "create",
                "--tenant",
                "acme",
                "--issuer",
                gha,
                "--audience",
                "tollgate",
                "--subject",
                "repo:acme/app:*",
                "--tag",
                "ci=gha",
            ],
            None,
        ),
        (["trust", "list", "--tenant", "acme"], None),
        (["trust", "show", trusted["policy_id"]], None),
        (["trust", "delete", trusted["policy_id"], "--reason", "moved to another org"], None),
        (["usage", "--tenant", "acme"], None),
        (["usage", "--tenant", "acme", "--by", "model", "--granularity", "day"], None),
        (["usage", "reconcile", "--tenant", "acme"], None),
        (["usage", "dead-letters"], None),
        (["usage", "dead-letters", "--source", "spike-detector", "--limit", "5"], None),
        (["statement", "--tenant", "acme"], None),
        (["statement", "--tenant", "acme", "--format", "json"], None),
        (["statement", "--tenant", "acme", "--format", "html", "--out", f"{trace}.html"], None),
        (["exposure", parent["key_id"]], None),
        (["exposure", "--secret", "-"], leaked["secret"]),
        (["audit", "--tenant", "acme"], None),
        (["detect", "backtest", trace, "--policy", "alert", "--spike-factor", "3"], None),
        (["finetune", "create", "--tenant", "acme", "--base-model", "tollgate-echo"], None),
        (["keys", "revoke", child_parent["key_id"], "--reason", "leaked"], None),
        (["keys", "revoke", "--secret", "-", "--reason", "leaked"], leaked["secret"]),
        (["keys", "revoke", "--tenant", "acme", "--principal", "bot", "--reason", "r"], None),
        (["keys", "revoke", other["key_id"], "--reason", "again"], None),
        (["keys", "revoke", "--tenant", "acme", "--reason", "offboarded"], None),
        (["keys", "show", bot["key_id"]], None),
        # billing export (issue 14 item 5): the Stripe key and fake come from the environment
        (["billing", "map", "acme", "--stripe-customer", "cus_Acme1"], None),
        (
            [
                "billing",
                "map",
                "acme",
                "--marketplace-customer-account",
                "123456789012",
                "--marketplace-license-arn",
                "arn:aws:license-manager::1:license:l-1",
            ],
            None,
        ),
        (["billing", "customers"], None),
        (["billing", "export", "--to", "stripe"], None),
        (["billing", "export", "--to", "aws-marketplace", "--period", "2026-11"], None),
        (["billing", "reconcile", "--to", "stripe"], None),
        (["billing", "reconcile", "--to", "aws-marketplace", "--period", "2026-11"], None),
    ]


def placed(argv: list[str], options: list[str], n: int) -> list[str]:
    """The global options before the command (even n) or after it (odd n)."""
    return [*options, *argv] if n % 2 == 0 else [*argv, *options]


class _Stdout:
    """Whatever ``sys.stdout`` is when a line is written (the test's captured one)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture
def as_in_a_fresh_process() -> Iterator[None]:
    """The functions' loggers as a fresh ``python -m tollgate`` has them without any
    ``POWERTOOLS_*`` variable: level INFO, writing to stdout. ``tests/conftest.py`` makes
    them WARNING before they are built, which hid finding 1."""
    from functions.common.observability import logger

    log = logging.getLogger(logger.name)
    handlers = [h for h in log.handlers if isinstance(h, logging.StreamHandler)]
    level, streams = log.level, [h.stream for h in handlers]
    log.setLevel(logging.INFO)
    for handler in handlers:
        handler.stream = _Stdout()
    try:
        yield
    finally:
        log.setLevel(level)
        for handler, stream in zip(handlers, streams, strict=True):
            handler.stream = stream


@pytest.mark.parametrize("where", ["--local", "AWS_ENDPOINT_URL"])
def test_every_command_prints_one_document(
    cli: Run,
    trace: str,
    as_in_a_fresh_process: None,
    moto_server: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    monkeypatch.setenv("TOLLGATE_AWS_PORT", str(moto_server.port))
    from tollgate.local.stripe_fake import StripeFake

    stripe = StripeFake().start()
    monkeypatch.setenv("TOLLGATE_STRIPE_API_KEY", "sk_test_onedocument")
    monkeypatch.setenv("TOLLGATE_STRIPE_API_BASE", stripe.url)
    request_stop = stripe.stop
    options = ["--json", "--local"] if where == "--local" else ["--json"]
    count = iter(range(10_000))
    for argv, stdin in every_command(trace):
        result = cli(*placed(argv, options, next(count)), input=stdin, json=False)
        data = one_document(result, " ".join(argv))
        assert not any(mark in result.out + result.err for mark in LEAKED), (argv, result.err)
        if argv[:2] == ["keys", "revoke"]:
            assert data["revoked"], argv
    request_stop()


def fresh_env(moto_server: MotoServer) -> dict[str, str]:
    """This environment without POWERTOOLS_* (the CLI sets its own level) and without
    AWS_ENDPOINT_URL (``--local`` alone says where AWS is)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_")}
    for name in ("TOLLGATE_LOG_LEVEL", "AWS_ENDPOINT_URL"):
        env.pop(name, None)
    env.update(TOLLGATE_AWS_PORT=str(moto_server.port), TOLLGATE_ACTOR="test:operator")
    return env


def run_process(argv: list[str], env: dict[str, str], stdin: str | None = None) -> Result:
    done = subprocess.run(
        [sys.executable, "-m", "tollgate", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def test_every_revoke_path_in_a_real_process_prints_one_document(
    dynamodb: Any, moto_server: MotoServer
) -> None:
    env = fresh_env(moto_server)
    svc = KeyService()
    svc.create_plan("pro", actor="test")
    svc.create_tenant("acme", plan="pro", actor="test")
    one, leaked, _ = (svc.create_key("acme", actor="test") for _ in range(3))
    svc.create_key("acme", principal="bot", actor="test")
    paths: list[Command] = [
        (["keys", "revoke", one["key_id"], "--reason", "leaked"], None),
        (["keys", "revoke", "--secret", "-", "--reason", "leaked"], leaked["secret"]),
        (["keys", "revoke", "--tenant", "acme", "--principal", "bot", "--reason", "r"], None),
        (["keys", "revoke", "--tenant", "acme", "--reason", "offboarded"], None),
    ]
    for n, (argv, stdin) in enumerate(paths):
        result = run_process(placed(argv, ["--local", "--json"], n), env, stdin)
        data = one_document(result, " ".join(argv))
        assert data["revoked"], argv
        assert not any(mark in result.out + result.err for mark in LEAKED), (argv, result.err)


def test_verbose_shows_the_info_lines_on_stderr_only(
    dynamodb: Any, moto_server: MotoServer
) -> None:
    env = fresh_env(moto_server)

    def run(*argv: str, **extra: str) -> Result:
        return run_process(["--local", *argv], {**env, **extra})

    svc = KeyService()
    svc.create_plan("pro", actor="test")
    svc.create_tenant("acme", plan="pro", actor="test")
    keys = [svc.create_key("acme", actor="test")["key_id"] for _ in range(3)]

    quiet = run("keys", "revoke", keys[0], "--reason", "r")  # human output, default level
    assert quiet.code == 0 and quiet.out.startswith("Revoked 1 key(s)"), quiet.err
    assert not any(mark in quiet.out + quiet.err for mark in LEAKED)

    loud = run("keys", "revoke", keys[1], "--reason", "r", "--json", "--verbose")
    assert json.loads(loud.out)["revoked"] == [keys[1]]
    assert '"level":"INFO"' in loud.err and "revoked" in loud.err

    by_env = run("--json", "keys", "revoke", keys[2], "--reason", "r", TOLLGATE_LOG_LEVEL="info")
    assert json.loads(by_env.out)["revoked"] == [keys[2]]
    assert '"level":"INFO"' in by_env.err

    bad = run("plans", "list", TOLLGATE_LOG_LEVEL="loud")
    assert bad.code == 2 and bad.out == "" and bad.err.count("\n") == 1
    assert "TOLLGATE_LOG_LEVEL" in bad.err
