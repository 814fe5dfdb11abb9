"""``--stack NAME``: find the table names of a deployed stack from its outputs.

The tables construct exports one output per table kind, named ``Table<Kind>`` (e.g.
``TablePlans``). CDK may prefix and suffix an output's logical id when it is declared
inside a construct, so an output whose key *contains* ``Table<Kind>`` also matches when
there is exactly one.
"""

from __future__ import annotations

from typing import Any

from functions.common.config import TABLE_KINDS, TableNames
from tollgate.cli.context import BadInput


def output_key(kind: str) -> str:
    return "Table" + kind.capitalize()


def read_outputs(stack_name: str, client: Any | None = None) -> dict[str, str]:
    """The outputs of ``stack_name`` (``BadInput`` if there is no such stack)."""
    if client is None:
        import boto3

        client = boto3.client("cloudformation")
    from botocore.exceptions import ClientError

    try:
        stacks = client.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ValidationError":
            raise BadInput(f"unknown stack {stack_name!r}") from None
        raise
    if not stacks:
        raise BadInput(f"unknown stack {stack_name!r}")
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def table_names(outputs: dict[str, str], stack_name: str = "the stack") -> TableNames:
    """The table of each kind in ``functions.common.config.TABLE_KINDS``, from outputs."""
    names: dict[str, str] = {}
    missing = []
    for kind in TABLE_KINDS:
        wanted = output_key(kind)
        if wanted in outputs:
            names[kind] = outputs[wanted]
            continue
        close = [k for k in outputs if wanted in k]
        if len(close) == 1:
            names[kind] = outputs[close[0]]
        else:
            missing.append(wanted)
    if missing:
        raise RuntimeError(f"{stack_name} has no output {', '.join(missing)}")
    return TableNames(**names)
