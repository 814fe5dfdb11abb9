"""Finding 4 of issue 11 (``make local`` part): the local stack has a key list of its own, so a
leak report signed with its local test key revokes the key through the local gateway, and a
report signed with any other key is refused."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

from tests.e2e.conftest import Stack
from tests.e2e.test_gateway import http, new_key
from tollgate.local.github import key_path, send_report


def test_finding_4_a_report_signed_with_the_local_test_key_revokes_through_the_gateway(
    stack: Stack,
) -> None:
    tenant = f"leak-{uuid.uuid4().hex[:8]}"
    stack.cli("plans", "create", tenant)
    stack.cli("tenants", "create", tenant, "--plan", tenant)
    key = new_key(stack, tenant)
    assert http(stack, "GET", "/v1/models", key["secret"])[0] == 200
    key_file = key_path(int(stack.env["TOLLGATE_PORT"]))
    assert key_file.exists() and key_file.stat().st_mode & 0o077 == 0

    status, answer = send_report(stack.url, [key["secret"], "tg_live_not_ours"], key_file)
    assert status == 200, answer
    assert [a["label"] for a in answer] == ["true_positive", "false_positive"]
    status, _, body = http(stack, "GET", "/v1/models", key["secret"])
    assert status == 403 and body["error"]["code"] == "key_revoked"
    again = send_report(stack.url, [key["secret"], "tg_live_not_ours"], key_file)
    assert again == (200, answer)  # a replay: the same answer, nothing done again
    revoked = [r for r in stack.cli("audit", "--key", key["key_id"]) if "revoked" in r["action"]]
    assert len(revoked) == 1 and revoked[0]["actor"] == "github-secret-scanning"


def test_finding_4_the_report_command_and_a_foreign_signature(stack: Stack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    tenant = f"leak-{uuid.uuid4().hex[:8]}"
    stack.cli("plans", "create", tenant)
    stack.cli("tenants", "create", tenant, "--plan", tenant)
    key = new_key(stack, tenant)
    foreign = tmp_path / "not-the-local-key.pem"
    foreign.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    status, answer = send_report(stack.url, [key["secret"]], foreign)
    assert status == 401 and answer["error"]["code"] == "invalid_signature"
    assert http(stack, "GET", "/v1/models", key["secret"])[0] == 200

    proc = subprocess.run(
        [sys.executable, "-m", "tollgate.local.github", "report", key["secret"]],
        env=stack.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [{"token_type": "tollgate_api_key", "label": "true_positive"}]
    assert key["secret"] not in proc.stdout
    assert http(stack, "GET", "/v1/models", key["secret"])[0] == 403
