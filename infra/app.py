"""Builds the CDK app: used by ``app.py`` (the CDK CLI's entry point) and by tests/infra."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from aws_cdk import App, Environment

from infra.nag import add_checks
from infra.settings import Settings
from infra.stack import TollgateStack


def build(
    context: Mapping[str, Any] | None = None, *, nag: bool = True, outdir: str | None = None
) -> tuple[App, TollgateStack]:
    app = App(context=dict(context) if context else None, outdir=outdir)
    settings = Settings.from_context(app.node)
    stack = TollgateStack(
        app,
        settings.stack_name,
        settings=settings,
        # Account and region come from the CLI's credentials (unset: environment-agnostic).
        env=Environment(
            account=os.environ.get("CDK_DEFAULT_ACCOUNT"),
            region=os.environ.get("CDK_DEFAULT_REGION"),
        ),
    )
    if nag:
        add_checks(app)
    return app, stack
