"""Tables: derived from the pynamodb models, encrypted, recoverable, protected in prod."""

from __future__ import annotations

from typing import Any

import pytest

from functions.common.config import TABLE_KINDS
from functions.common.models import TABLES, table_schema
from infra.tables import output_id
from tests.infra.cfn import of_type, ref
from tests.infra.conftest import Synth


def tables_by_kind(synth: Synth) -> dict[str, dict[str, Any]]:
    outputs = synth.outputs
    return {
        kind: synth.resources[str(ref(outputs[output_id(kind)]["Value"]))] for kind in TABLE_KINDS
    }


def the_key(synth: Synth) -> str:
    """The one customer managed key that encrypts every table."""
    (key,) = {
        ref(t["Properties"]["SSESpecification"]["KMSMasterKeyId"])
        for t in tables_by_kind(synth).values()
    }
    assert key in of_type(synth.resources, "AWS::KMS::Key")
    return str(key)


def test_one_table_per_kind_named_in_outputs(dev: Synth) -> None:
    outputs = dev.outputs
    assert {f"Table{k.capitalize()}" for k in TABLE_KINDS} <= set(outputs)
    tables = tables_by_kind(dev)
    assert all(t["Type"] == "AWS::DynamoDB::Table" for t in tables.values())
    assert len({id(t) for t in tables.values()}) == len(TABLE_KINDS)
    assert len(of_type(dev.resources, "AWS::DynamoDB::Table")) == len(TABLE_KINDS)


@pytest.mark.parametrize("spec", TABLES, ids=lambda s: s.kind)
def test_keys_indexes_stream_and_ttl_come_from_the_model(dev: Synth, spec: Any) -> None:
    props = tables_by_kind(dev)[spec.kind]["Properties"]
    schema = table_schema(spec)
    assert props["KeySchema"] == [
        {"AttributeName": k["AttributeName"], "KeyType": k["KeyType"]} for k in schema["KeySchema"]
    ]
    assert sorted(props["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == sorted(
        schema["AttributeDefinitions"], key=lambda a: a["AttributeName"]
    )

    def index(gsi: dict[str, Any]) -> tuple[str, list[tuple[str, str]], str]:
        return (
            gsi["IndexName"],
            [(k["AttributeName"], k["KeyType"]) for k in gsi["KeySchema"]],
            gsi["Projection"]["ProjectionType"],
        )

    assert sorted(map(index, props.get("GlobalSecondaryIndexes", []))) == sorted(
        map(index, schema["GlobalSecondaryIndexes"])
    )
    if spec.stream:
        assert props["StreamSpecification"] == {"StreamViewType": spec.stream}
    else:
        assert "StreamSpecification" not in props
    if spec.ttl:
        assert props["TimeToLiveSpecification"] == {"AttributeName": spec.ttl, "Enabled": True}
    else:
        assert "TimeToLiveSpecification" not in props


def test_every_table_on_demand_pitr_and_encrypted_with_the_cmk(synth: Synth) -> None:
    key = the_key(synth)
    for kind, table in tables_by_kind(synth).items():
        props = table["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST", kind
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        sse = props["SSESpecification"]
        assert sse["SSEEnabled"] is True and sse["SSEType"] == "KMS", kind
        assert ref(sse["KMSMasterKeyId"]) == key, kind


def test_kms_key_rotation_on_for_every_key(synth: Synth) -> None:
    for name, key in of_type(synth.resources, "AWS::KMS::Key").items():
        assert key["Properties"]["EnableKeyRotation"] is True, name


def test_dev_tables_are_disposable(dev: Synth) -> None:
    for kind, table in tables_by_kind(dev).items():
        assert table["DeletionPolicy"] == "Delete", kind
        assert table["Properties"]["DeletionProtectionEnabled"] is False, kind
    assert dev.resources[the_key(dev)]["DeletionPolicy"] == "Delete"


def test_prod_tables_are_protected_and_retained(prod: Synth) -> None:
    for kind, table in tables_by_kind(prod).items():
        assert table["DeletionPolicy"] == "Retain", kind
        assert table["UpdateReplacePolicy"] == "Retain", kind
        assert table["Properties"]["DeletionProtectionEnabled"] is True, kind
    assert prod.resources[the_key(prod)]["DeletionPolicy"] == "Retain"
    assert prod.stack.termination_protection is True
