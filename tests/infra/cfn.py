"""Small readers of a synthesised CloudFormation template (plain dicts)."""

from __future__ import annotations

from typing import Any


def of_type(resources: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in resources.items() if v["Type"] == type_}


def ref(value: Any) -> str | None:
    """The logical id a Ref or Fn::GetAtt points at, else None."""
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            return str(value["Fn::GetAtt"][0])
    return None


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_statements(resources: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    """Every policy statement granted to a role: inline, and in AWS::IAM::Policy resources."""
    role = resources[role_id]
    statements = [
        s for p in role["Properties"].get("Policies", []) for s in p["PolicyDocument"]["Statement"]
    ]
    for policy in of_type(resources, "AWS::IAM::Policy").values():
        if role_id in [ref(r) for r in policy["Properties"]["Roles"]]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def grants(statements: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(action, resource) pairs; a resource is a logical id when it references one."""
    pairs = set()
    for statement in statements:
        assert statement["Effect"] == "Allow"
        for action in as_list(statement["Action"]):
            for resource in as_list(statement["Resource"]):
                pairs.add((action, ref(resource) or _render(resource)))
    return pairs


def _render(value: Any) -> str:
    """A readable string for Fn::Join ARNs: tokens as <Ref> / <Id.Attr>."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        return "".join(_render(v) for v in value["Fn::Join"][1])
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return "<{}.{}>".format(*value["Fn::GetAtt"])
    return repr(value)


def resource_paths(resources: dict[str, Any]) -> dict[str, str]:
    """API Gateway resource logical id -> its full path ("/v1/models")."""
    nodes = of_type(resources, "AWS::ApiGateway::Resource")
    paths: dict[str, str] = {}

    def path(logical_id: str) -> str:
        if logical_id not in paths:
            props = nodes[logical_id]["Properties"]
            parent = ref(props["ParentId"])
            prefix = path(parent) if parent in nodes else ""
            paths[logical_id] = f"{prefix}/{props['PathPart']}"
        return paths[logical_id]

    for logical_id in nodes:
        path(logical_id)
    return paths
