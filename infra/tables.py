"""Every DynamoDB table, derived from the pynamodb models (``functions.common.models.TABLES``).

Keys and indexes come from :func:`functions.common.models.table_schema`, the same function
the local stack creates its tables with, so a key schema is written only in the model.
All tables: on-demand, point-in-time recovery, encrypted with one customer managed KMS key
(rotated yearly), deletion protection and RETAIN in prod, DESTROY in dev.

``dynamodb.Table`` rather than ``TableV2``: TableV2 cannot render a customer managed key in
an environment-agnostic stack (its replica SSE specification needs a concrete region), and
the stack must synthesise offline without credentials (``make synth`` in CI).
"""

from __future__ import annotations

from typing import Any, Final

from aws_cdk import CfnOutput
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct

from functions.common.config import TABLE_KINDS
from functions.common.models import TABLES, TableSpec, table_schema
from infra.settings import Settings

_ATTRIBUTE_TYPES: Final = {
    "S": dynamodb.AttributeType.STRING,
    "N": dynamodb.AttributeType.NUMBER,
    "B": dynamodb.AttributeType.BINARY,
}


def output_id(kind: str) -> str:
    """The stack output holding the name of the table of ``kind`` (read by ``tollgate --stack``)."""
    return f"Table{kind.capitalize()}"


def _keys(
    key_schema: list[dict[str, str]], types: dict[str, str]
) -> tuple[dynamodb.Attribute, dynamodb.Attribute | None]:
    by_type = {
        k["KeyType"]: dynamodb.Attribute(
            name=k["AttributeName"], type=_ATTRIBUTE_TYPES[types[k["AttributeName"]]]
        )
        for k in key_schema
    }
    return by_type["HASH"], by_type.get("RANGE")


def _index(gsi: dict[str, Any], types: dict[str, str]) -> dict[str, Any]:
    """Keyword arguments of ``Table.add_global_secondary_index`` for one index."""
    projection = gsi["Projection"]["ProjectionType"]
    if projection == "INCLUDE":  # the models have none; it would need NonKeyAttributes
        raise ValueError(f"index {gsi['IndexName']}: INCLUDE projections are not supported")
    partition_key, sort_key = _keys(gsi["KeySchema"], types)
    return {
        "index_name": gsi["IndexName"],
        "partition_key": partition_key,
        "sort_key": sort_key,
        "projection_type": dynamodb.ProjectionType[projection],
    }


class Tables(Construct):
    """One table per kind; ``tables[kind]``, ``indexes[kind]`` and the shared ``key``."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "TablesKey",
            description="Tollgate: encrypts every DynamoDB table, its streams and backups",
            enable_key_rotation=True,
            removal_policy=settings.removal_policy,
            pending_window=settings.key_pending_window,
        )
        self.tables: dict[str, dynamodb.Table] = {}
        self.indexes: dict[str, tuple[str, ...]] = {}
        for spec in TABLES:
            self._add(spec, settings)
        missing = set(TABLE_KINDS) - set(self.tables)
        if missing:
            raise ValueError(f"no TableSpec for table kinds {sorted(missing)}")
        for kind in TABLE_KINDS:
            CfnOutput(
                self,
                output_id(kind),
                value=self.tables[kind].table_name,
                description=f"DynamoDB table of {kind}",
            ).override_logical_id(output_id(kind))

    def _add(self, spec: TableSpec, settings: Settings) -> None:
        schema = table_schema(spec)
        types = {a["AttributeName"]: a["AttributeType"] for a in schema["AttributeDefinitions"]}
        partition_key, sort_key = _keys(schema["KeySchema"], types)
        table = dynamodb.Table(
            self,
            spec.kind.capitalize(),
            partition_key=partition_key,
            sort_key=sort_key,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self.key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            stream=dynamodb.StreamViewType[spec.stream] if spec.stream else None,
            time_to_live_attribute=spec.ttl,
            deletion_protection=settings.deletion_protection,
            removal_policy=settings.removal_policy,
        )
        for gsi in schema["GlobalSecondaryIndexes"]:
            table.add_global_secondary_index(**_index(gsi, types))
        self.tables[spec.kind] = table
        self.indexes[spec.kind] = tuple(g["IndexName"] for g in schema["GlobalSecondaryIndexes"])
