"""Synthesise the stack once per session and environment, with cdk-nag on, bundling off.

``aws:cdk:bundling-stacks: []`` makes CDK point the code asset at ``functions/`` instead of
running the pip bundler, so no network and no wheels are needed here. The context of
``cdk.json`` (feature flags included) is loaded so tests see what ``cdk synth`` builds.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Before the first aws_cdk import starts jsii's node process (test modules import it later).
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

ROOT = Path(__file__).resolve().parents[2]


def cdk_context(**overrides: Any) -> dict[str, Any]:
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    return {**context, "aws:cdk:bundling-stacks": [], **overrides}


@dataclass
class Synth:
    """One synthesis: the stack, its template, and what cdk-nag said about it."""

    stack: Any
    data: dict[str, Any]  # the template as written to cloud assembly
    template_path: Path
    error: str | None
    report: dict[str, Any]

    @property
    def resources(self) -> dict[str, Any]:
        return dict(self.data["Resources"])

    @property
    def outputs(self) -> dict[str, Any]:
        return dict(self.data["Outputs"])

    @functools.cached_property
    def template(self) -> Any:
        """The same template as ``aws_cdk.assertions.Template``, for its matchers."""
        from aws_cdk.assertions import Template

        return Template.from_json(self.data)


def synthesise(outdir: Path, **context: Any) -> Synth:
    from infra.app import build

    app, stack = build(cdk_context(**context), nag=True, outdir=str(outdir))
    error = None
    try:
        app.synth()
    except RuntimeError as exc:  # cdk-nag findings: ValidationFailed
        error = str(exc)
    template_path = outdir / f"{stack.stack_name}.template.json"
    report_path = outdir / "validation-report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return Synth(stack, json.loads(template_path.read_text()), template_path, error, report)


@pytest.fixture(scope="session")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesise(tmp_path_factory.mktemp("cdk-dev"), env_name="dev")


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesise(
        tmp_path_factory.mktemp("cdk-prod"), env_name="prod", stack_name="Tollgate-prod-test"
    )


@pytest.fixture(params=["dev", "prod"])
def synth(request: pytest.FixtureRequest) -> Synth:
    return request.getfixturevalue(request.param)
