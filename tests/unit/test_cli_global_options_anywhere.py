"""Finding 6 of issue 11: ``--help`` renders flags as flags (0.1.0: ``--local <bool>``), and
the global options work after the command as well as before it (0.1.0: "No such option")."""

from __future__ import annotations

import pytest

from tollgate.cli import hoist_global_options, main


@pytest.mark.parametrize(
    ("given", "parsed"),
    [
        (["keys", "list", "--tenant", "t", "--json"], ["--json", "keys", "list", "--tenant", "t"]),
        (["--json", "plans", "list"], ["--json", "plans", "list"]),
        (["plans", "list", "--stack", "prod", "--local"], ["--stack", "prod", "--local", "plans",
                                                          "list"]),
        (["plans", "--stack=prod", "list", "--verbose"], ["--stack=prod", "--verbose", "plans",
                                                          "list"]),
        (["x", "--", "--json"], ["x", "--", "--json"]),  # after --, nothing is an option
    ],
)  # fmt: skip
def test_global_options_move_to_the_front(given: list[str], parsed: list[str]) -> None:
    assert hoist_global_options(given) == parsed


@pytest.mark.parametrize(
    "command",
    [[], ["keys"], ["keys", "revoke"], ["exposure"], ["usage"], ["usage", "dead-letters"],
     ["detect", "backtest"], ["statement"], ["finetune", "create"]],
)  # fmt: skip
def test_help_shows_flags_as_flags(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage: tollgate")
    assert "<bool>" not in out and "[[" not in out, out


def test_root_help_lists_every_global_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for line in ("  --local ", "  --stack NAME ", "  --json ", "  --verbose "):
        assert line in out, out


def test_a_global_option_after_the_command_is_not_no_such_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv in (["plans", "list", "--stack"], ["plans", "list", "--stack", "--json"]):
        assert main(argv) == 2  # parsed as the global --stack, which needs a name
        err = capsys.readouterr().err
        assert err == "error: --stack needs a value: --stack NAME\n", err
