"""KeyService.create_key / delegate_key with ``allow_cidrs`` and ``tags`` (issue 15): what is
validated, what is stored where, what a delegated key inherits."""

from __future__ import annotations

from typing import Any

import pytest

from functions.common import keyformat
from functions.common.models import Key, Secret
from functions.gate import items as it
from functions.keys import KeyService
from functions.keys.errors import InvalidInput
from tests import gate_support
from tests.integration.conftest import Run

pytestmark = pytest.mark.usefixtures("dynamodb")


def gate_item(tenant_id: str, key_id: str) -> dict[str, Any]:
    return dict(gate_support.view(tenant_id)["gate"][key_id])


def test_create_stores_cidrs_on_the_gate_item_and_tags_on_key_and_secret(
    cli: Run, tenant: str
) -> None:
    made = KeyService().create_key(
        tenant,
        allow_cidrs=["10.1.0.0/16", "2001:db8::/32,192.0.2.7", "10.1.0.0/16"],
        tags={"team": "search", "cost-center": "cc-42"},
        actor="test:op",
    )
    assert made["allow_cidrs"] == ["10.1.0.0/16", "192.0.2.7/32", "2001:db8::/32"]
    assert made["tags"] == {"cost-center": "cc-42", "team": "search"}
    assert made["requests_per_minute"] is None
    assert gate_item(tenant, made["key_id"])[it.ALLOW_CIDRS] == made["allow_cidrs"]
    record = Key.get(made["key_id"], consistent_read=True)
    assert list(record.allow_cidrs or []) == made["allow_cidrs"]
    secret = Secret.get(keyformat.hash_secret(made["secret"]), consistent_read=True)
    assert secret.tags is not None and secret.tags.as_dict() == made["tags"]
    shown = cli("keys", "show", made["key_id"]).ok().json
    assert (shown["allow_cidrs"], shown["tags"]) == (made["allow_cidrs"], made["tags"])
    audit = cli("audit", "--key", made["key_id"]).ok().json[0]
    assert audit["details"]["allow_cidrs"] == made["allow_cidrs"]
    assert audit["details"]["tags"] == made["tags"]


def test_no_cidrs_no_attribute(tenant: str) -> None:
    made = KeyService().create_key(tenant, actor="test:op")
    assert it.ALLOW_CIDRS not in gate_item(tenant, made["key_id"])
    assert made["allow_cidrs"] is None and made["tags"] == {}


@pytest.mark.parametrize(
    ("cidrs", "tags", "message"),
    [
        (["10.0.0.1/8"], None, "host bits set"),
        (["10.0.0.0/33"], None, "not a CIDR"),
        (["example.com"], None, "not a CIDR"),
        ([""], None, "at least one CIDR"),
        ([f"10.{i}.0.0/16" for i in range(17)], None, "at most 16"),
        (None, {"": "x"}, "key before '=' is empty"),
        (None, {"team": ""}, "value after '=' is empty"),
        (None, {"te am": "x"}, "use only"),
        (None, {"team": "a,b"}, "use only"),
        (None, {"team": "a=b"}, "use only"),
        (None, {"team": "a#b"}, "use only"),
        (None, {"k" * 33: "x"}, "longer than 32"),
        (None, {"team": "v" * 129}, "longer than 128"),
        (None, {f"k{i}": "x" for i in range(9)}, "at most 8 tags"),
    ],
)
def test_bad_input_writes_nothing(
    tenant: str, cidrs: list[str] | None, tags: dict[str, str] | None, message: str
) -> None:
    before = len(list(Key.scan()))
    with pytest.raises(InvalidInput, match=message):
        KeyService().create_key(tenant, allow_cidrs=cidrs, tags=tags, actor="test:op")
    assert len(list(Key.scan())) == before


def test_delegate_inherits_and_narrows(tenant: str) -> None:
    svc = KeyService()
    parent = svc.create_key(
        tenant, allow_cidrs=["10.0.0.0/8", "2001:db8::/32"], tags={"team": "a", "env": "prod"},
        actor="test:op",
    )  # fmt: skip
    child = svc.delegate_key(parent["key_id"], principal="agent", actor="test:op")
    assert child["allow_cidrs"] == parent["allow_cidrs"]
    assert child["tags"] == {"env": "prod", "team": "a"}
    assert gate_item(tenant, child["key_id"])[it.ALLOW_CIDRS] == parent["allow_cidrs"]
    narrow = svc.delegate_key(
        parent["key_id"], principal="agent2", allow_cidrs=["10.9.0.0/16", "2001:db8:1::/48"],
        tags={"team": "b", "job": "ci"}, actor="test:op",
    )  # fmt: skip
    assert narrow["allow_cidrs"] == ["10.9.0.0/16", "2001:db8:1::/48"]
    assert narrow["tags"] == {"env": "prod", "job": "ci", "team": "b"}
    for wider in (["11.0.0.0/16"], ["0.0.0.0/0"], ["2001:db9::/48"], ["10.0.0.0/7"]):
        with pytest.raises(InvalidInput, match="not within the parent"):
            svc.delegate_key(parent["key_id"], principal="x", allow_cidrs=wider, actor="test:op")


def test_delegate_of_an_unbound_parent_may_bind(tenant: str) -> None:
    svc = KeyService()
    parent = svc.create_key(tenant, actor="test:op")
    child = svc.delegate_key(
        parent["key_id"], principal="agent", allow_cidrs=["192.0.2.0/24"], actor="test:op"
    )
    assert child["allow_cidrs"] == ["192.0.2.0/24"] and child["tags"] == {}


def test_delegated_tags_over_the_limit_are_refused(tenant: str) -> None:
    svc = KeyService()
    parent = svc.create_key(tenant, tags={f"p{i}": "x" for i in range(8)}, actor="test:op")
    with pytest.raises(InvalidInput, match="at most 8 tags"):
        svc.delegate_key(parent["key_id"], principal="a", tags={"new": "y"}, actor="test:op")


def test_rotate_keeps_tags_and_cidrs(tenant: str) -> None:
    svc = KeyService()
    made = svc.create_key(tenant, allow_cidrs=["10.0.0.0/8"], tags={"team": "a"}, actor="test:op")
    rotated = svc.rotate_key(made["key_id"], grace="0s", actor="test:op")
    secret = Secret.get(keyformat.hash_secret(rotated["secret"]), consistent_read=True)
    assert secret.tags is not None and secret.tags.as_dict() == {"team": "a"}
    assert gate_item(tenant, made["key_id"])[it.ALLOW_CIDRS] == ["10.0.0.0/8"]
    assert rotated["allow_cidrs"] == ["10.0.0.0/8"] and rotated["tags"] == {"team": "a"}
