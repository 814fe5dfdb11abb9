"""Findings 4 and 7 (part) of issue 11, through the real webhook handler on moto, with GitHub
played by a local key server:

* finding 4: the key list is fetched at most once per refresh interval however many forged
  identifiers arrive, not at all while backing off from a failure, the last good list keeps
  verifying real reports while GitHub is down, and the fetch is authenticated with a token
  kept in Secrets Manager (sent as ``Authorization``, never logged);
* finding 7: a signed report sent again is acknowledged with the same answer, without
  revoking or auditing again; the memory of processed reports is one bounded item with a
  TTL."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from functions.common import ddb
from functions.common.models import DetectorState
from functions.keys import KeyService
from functions.respond.config import ENV_KEYS_TTL, ENV_KEYS_URL
from functions.webhook import handler as webhook
from functions.webhook.config import ENV_TOKEN_SECRET
from functions.webhook.replays import MAX_REPORTS, REPORTS_ID, Replays, report_id
from tests.detect_events import LambdaContext, Signer, webhook_event

ID_HEADER = "Github-Public-Key-Identifier"
SIG_HEADER = "Github-Public-Key-Signature"


class GitHub:
    """A key list endpoint that can go down (403, as GitHub's rate limit answers) and records
    the Authorization header of each fetch."""

    def __init__(self, signer: Signer) -> None:
        self.document = signer.key_list()
        self.down = False
        self.auth: list[str | None] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.auth.append(self.headers.get("Authorization"))
                if owner.down:
                    self.send_response(403)
                    self.end_headers()
                    self.wfile.write(b'{"message": "API rate limit exceeded"}')
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(owner.document)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/meta/public_keys/secret_scanning"

    @property
    def hits(self) -> int:
        return len(self.auth)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def signer() -> Signer:
    return Signer()


@pytest.fixture
def github(dynamodb: Any, monkeypatch: pytest.MonkeyPatch, signer: Signer) -> Iterator[GitHub]:
    ddb.reset_client()
    server = GitHub(signer)
    monkeypatch.setenv(ENV_KEYS_URL, server.url)
    monkeypatch.setenv(ENV_KEYS_TTL, "3600")
    monkeypatch.delenv(ENV_TOKEN_SECRET, raising=False)
    webhook.reset()
    yield server
    webhook.reset()
    server.close()


@pytest.fixture
def svc(dynamodb: Any) -> KeyService:
    svc = KeyService()
    svc.create_plan("starter", actor="test")
    svc.create_tenant("acme", plan="starter", actor="test")
    return svc


def report(*tokens: str) -> bytes:
    return json.dumps(
        [{"token": t, "type": "tollgate_api_key", "url": "https://gist.github.com/x/1"}
         for t in tokens]
    ).encode()  # fmt: skip


def post(body: bytes, signer: Signer) -> dict[str, Any]:
    headers = {ID_HEADER: signer.identifier, SIG_HEADER: signer.sign(body)}
    return webhook.handler(webhook_event(body, headers), LambdaContext())


def age(minutes: float) -> None:
    """Move the container's key cache back in time (as if ``minutes`` had passed)."""
    cache = webhook.public_keys()
    cache._fetched_at = (cache._fetched_at or 0) - minutes * 60
    cache._next_try -= minutes * 60


def test_finding_4_forged_key_ids_and_an_unavailable_list_cause_no_fetch_storm(
    github: GitHub, signer: Signer, svc: KeyService
) -> None:
    key = svc.create_key("acme", actor="test")
    assert post(report("tg_live_x"), signer)["statusCode"] == 200
    assert github.hits == 1
    github.down = True  # GitHub rate-limits us from now on
    for n in range(50):  # forged identifiers: refused, no refetch within the minute
        forged = Signer(f"forged-{n}")
        assert post(report("tg_live_y"), forged)["statusCode"] == 401
    assert github.hits == 1
    age(61)
    for n in range(50):  # a minute later: one fetch (it fails), then backing off
        assert post(report("tg_live_y"), Signer(f"forged-b{n}"))["statusCode"] == 401
    assert github.hits == 2
    age(120)  # the list is now past its TTL too, and GitHub still down
    response = post(report(key["secret"]), signer)  # a real report: the last good list
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"])[0]["label"] == "true_positive"
    assert svc.get_key(key["key_id"])["status"] == "revoked"
    assert github.hits == 3


def test_finding_4_no_list_yet_and_github_down_is_a_503_with_the_backoff(
    github: GitHub, signer: Signer
) -> None:
    github.down = True
    answers = [post(report("tg_live_x"), signer) for _ in range(20)]
    assert {a["statusCode"] for a in answers} == {503}
    assert github.hits == 1  # not one fetch per request
    assert 1 <= int(answers[-1]["headers"]["Retry-After"]) <= 60


def test_finding_4_the_key_list_fetch_is_authenticated_with_the_secret_token(
    github: GitHub,
    signer: Signer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import boto3

    token = "ghp_" + "T0ps3cr3t" * 4
    arn = boto3.client("secretsmanager").create_secret(
        Name="tollgate-github-token", SecretString=json.dumps({"token": token})
    )["ARN"]
    monkeypatch.setenv(ENV_TOKEN_SECRET, arn)
    webhook.reset()
    caplog.set_level(logging.DEBUG)
    assert post(report("tg_live_x"), signer)["statusCode"] == 200
    assert github.auth == [f"Bearer {token}"]
    github.down = True
    age(3600)
    assert post(report("tg_live_x"), signer)["statusCode"] == 200  # last good list
    assert github.auth[-1] == f"Bearer {token}"
    ours = [r for r in caplog.records if not r.name.startswith(("botocore", "urllib3"))]
    assert ours and not [r for r in ours if token in r.getMessage() or token in str(r.__dict__)]


def test_finding_4_an_unreadable_token_secret_fetches_without_a_token(
    github: GitHub, signer: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_TOKEN_SECRET, "no-such-secret")
    webhook.reset()
    assert post(report("tg_live_x"), signer)["statusCode"] == 200
    assert github.auth == [None]


def test_finding_7_a_replayed_report_is_acknowledged_without_revoking_or_auditing_again(
    github: GitHub, signer: Signer, svc: KeyService
) -> None:
    key = svc.create_key("acme", actor="test")
    body = report(key["secret"], "tg_live_not_ours", key["secret"])
    first = post(body, signer)
    assert first["statusCode"] == 200
    audit = svc.audit(key_id=key["key_id"])
    for _ in range(3):
        again = post(body, signer)
        assert again["statusCode"] == 200 and again["body"] == first["body"]
    assert svc.audit(key_id=key["key_id"]) == audit  # no already_revoked records
    stored = json.dumps(DetectorState.get(REPORTS_ID).state.as_dict())
    assert key["secret"] not in stored and report_id(body) in stored
    other = report(key["secret"])  # another report naming the key: processed as new
    assert post(other, signer)["statusCode"] == 200
    assert len(svc.audit(key_id=key["key_id"])) == len(audit) + 1


def test_finding_7_a_replay_is_only_remembered_until_its_ttl_and_the_memory_is_bounded(
    dynamodb: Any,
) -> None:
    now = [1_800_000_000.0]
    replays = Replays(3600, clock=lambda: now[0])
    assert replays.remember("r0", "tf")
    assert replays.seen("r0") == "tf"
    now[0] += 3601
    assert replays.seen("r0") is None
    for n in range(MAX_REPORTS + 20):
        now[0] += 1
        replays.remember(f"r{n + 1}", "t")
    entries = DetectorState.get(REPORTS_ID).state.as_dict()
    assert len(entries) == MAX_REPORTS and "r0" not in entries and "r1" not in entries
    assert replays.seen(f"r{MAX_REPORTS + 20}") == "t"
