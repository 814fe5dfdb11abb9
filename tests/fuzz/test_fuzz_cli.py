"""Bad command lines for ``tollgate`` (``tollgate.cli.main``, in-process, on moto).

Every command, with its options given random, malformed, out-of-range or misplaced values
and unknown options and arguments mixed in. The CLI exits 0 (a command line that happened
to be valid: one JSON document on stdout, or help) or 2 -- one ``error:`` line on stderr,
nothing on stdout and nothing written -- and never 1, never a traceback."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from tests.fuzz.support import count, fuzz, snapshot

COMMANDS: dict[tuple[str, ...], tuple[int, tuple[str, ...]]] = {
    # command: (positional arguments it takes, its options)
    ("plans", "create"): (
        1,
        (
            "--requests-per-minute",
            "--requests-per-month",
            "--tokens-per-month",
            "--scopes",
            "--models",
            "--price-per-1k-prompt",
            "--price-per-1k-completion",
            "--spike-policy",
            "--spike-factor",
            "--spike-floor-tpm",
        ),
    ),
    ("plans", "show"): (1, ()),
    ("tenants", "create"): (1, ("--plan",)),
    ("tenants", "show"): (1, ()),
    ("tenants", "set-plan"): (2, ()),
    ("keys", "create"): (0, ("--tenant", "--env", "--principal", "--scopes", "--expires-in")),
    ("keys", "delegate"): (1, ("--principal", "--scopes", "--token-budget", "--expires-in")),
    ("keys", "list"): (0, ("--tenant",)),
    ("keys", "show"): (1, ()),
    ("keys", "rotate"): (1, ("--grace",)),
    ("keys", "revoke"): (1, ("--secret", "--tenant", "--reason")),
    ("keys", "reinstate"): (1, ("--reason",)),
    ("usage",): (0, ("--tenant", "--key", "--principal", "--granularity", "--period")),
    ("statement",): (0, ("--tenant", "--period", "--format")),
    ("exposure",): (1, ("--secret",)),
    ("audit",): (0, ("--key", "--tenant")),
    ("finetune", "create"): (0, ("--tenant", "--base-model", "--suffix")),
    # billing export (issue 14 item 5)
    ("billing", "map"): (
        1,
        ("--stripe-customer", "--marketplace-customer-account", "--marketplace-license-arn"),
    ),
    ("billing", "customers"): (0, ()),
    ("billing", "export"): (0, ("--to", "--period", "--tenant")),
    ("billing", "reconcile"): (0, ("--to", "--period")),
}

values = st.one_of(
    st.text(max_size=24),
    st.integers(-(10**12), 10**12).map(str),
    st.sampled_from(
        [
            "",
            " ",
            "-1",
            "0",
            "1.5",
            "1e9",
            "99999999999999999999999",
            "NaN",
            "abc",
            "live",
            "test",
            "prod",
            "30d",
            "0s",
            "-5m",
            "1y",
            "2026-13",
            "2026-11",
            "2026-11-31",
            "month",
            "hour",
            "csv",
            "xml",
            "suspend",
            "sometimes",
            "inference:invoke,nope",
            "a,,b",
            "key_0000000000000000",
            "stripe",
            "aws-marketplace",
            "cus_",
            "123456789012",
            "arn:aws:license-manager::1:license:l-1",
            "tg_live_x",
            "starter",
            "acme",
            "\u2603",
            "a" * 300,
            "$(rm -rf /)",
            "--json",
            "-h",
            "\x00",
        ]
    ),
)


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from(sorted(COMMANDS)))
    positionals, options = COMMANDS[command]
    argv = list(command)
    argv += [draw(values) for _ in range(draw(st.integers(0, positionals + 1)))]
    for _ in range(draw(st.integers(0, 4))):
        name = draw(
            st.one_of(
                st.sampled_from(options or ("--tenant",)),
                st.sampled_from(["--nope", "-x", "--", "--json"]),
            )
        )
        argv.append(name)
        if draw(st.integers(0, 5)):  # sometimes an option without its value
            argv.append(draw(values))
    return argv


@pytest.fixture
def seeded(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from functions.keys import KeyService

    monkeypatch.setenv("TOLLGATE_ACTOR", "fuzz:operator")
    svc = KeyService()
    svc.create_plan("starter", actor="fuzz")
    svc.create_tenant("acme", plan="starter", actor="fuzz")
    return svc.create_key("acme", actor="fuzz")


@fuzz(80)
@given(argv=command_lines())
def test_bad_command_lines_exit_2_with_one_line_and_write_nothing(
    dynamodb: Any, seeded: dict[str, Any], capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    from tollgate.cli import main

    count("cli argv")
    capsys.readouterr()
    before = snapshot(dynamodb)
    code = main(["--json", *argv])
    out, err = capsys.readouterr()
    event(f"exit {code}")
    assert "Traceback" not in out + err, err
    assert code in (0, 2), (argv, code, out[-300:], err[-300:])
    if code == 2:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err)
        assert out == "", (argv, out[:300])
        assert snapshot(dynamodb) == before, ("written on bad input", argv)
    elif "Usage:" not in out:
        json.loads(out)  # one JSON document
    assert seeded["secret"] not in out + err
