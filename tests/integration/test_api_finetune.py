"""Fine-tuning job records: registered by ``tollgate finetune create``, read through
GET /v1/fine_tuning/jobs[/{id}] by the owning tenant only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from functions.api import handler as api
from functions.common.models import FineTuneJob
from functions.finetune.service import FineTuneInputError, create_job, new_job_id
from tests.integration.api_events import (
    Who,
    call,
    event,
    events_table,
    fresh_api,
    make_job,
    make_key,
    make_plan,
    make_tenant,
    who_for,
)
from tollgate.cli.finetune import app as finetune_app

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

BEDROCK = "bedrock:anthropic.claude-3-haiku-20240307-v1:0"


@pytest.fixture(autouse=True)
def tables(dynamodb: Any) -> Iterator[Any]:
    fresh_api()
    yield dynamodb
    api.reset()


@pytest.fixture
def two_tenants(dynamodb: Any) -> tuple[Who, Who]:
    plan = make_plan(models=["tollgate-echo", BEDROCK])
    make_tenant("acme", plan)
    make_tenant("globex", plan)
    return who_for("acme", make_key("acme")), who_for("globex", make_key("globex"))


def jobs_of(who: Who, **query: str) -> Any:
    reply = call(event("GET", "/v1/fine_tuning/jobs", who, query=query or None))
    assert reply.status == 200, reply.text
    return reply.json


def test_list_shows_only_the_callers_jobs_newest_first(
    two_tenants: tuple[Who, Who], tables: Any
) -> None:
    acme, globex = two_tenants
    ids = [
        create_job("acme", "tollgate-echo", f"v{i}", now=1_700_000_000 + i)["id"] for i in range(3)
    ]
    other = create_job("globex", BEDROCK)["id"]
    out = jobs_of(acme)
    assert out["object"] == "list" and out["has_more"] is False
    assert [j["id"] for j in out["data"]] == ids[::-1]
    job = out["data"][0]
    assert job["object"] == "fine_tuning.job"
    assert job["organization_id"] == "acme"
    assert job["model"] == "tollgate-echo" and job["status"] == "queued"
    assert job["user_provided_suffix"] == "v2" and job["created_at"] == 1_700_000_002
    assert [j["id"] for j in jobs_of(globex)["data"]] == [other]
    ops = {(e["tenant_id"], e["operation"]) for e in events_table(tables)}
    assert ops == {("acme", "fine_tuning.jobs.list"), ("globex", "fine_tuning.jobs.list")}


def test_list_pages_with_limit_and_after(two_tenants: tuple[Who, Who]) -> None:
    acme, _ = two_tenants
    ids = [create_job("acme", "tollgate-echo", now=1_700_000_000 + i)["id"] for i in range(5)]
    newest_first = ids[::-1]
    page = jobs_of(acme, limit="2")
    assert [j["id"] for j in page["data"]] == newest_first[:2] and page["has_more"] is True
    page = jobs_of(acme, limit="2", after=newest_first[1])
    assert [j["id"] for j in page["data"]] == newest_first[2:4] and page["has_more"] is True
    page = jobs_of(acme, limit="2", after=newest_first[3])
    assert [j["id"] for j in page["data"]] == newest_first[4:] and page["has_more"] is False


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "101"}, {"limit": "x"},
                                   {"after": "not-a-job"}])  # fmt: skip
def test_bad_paging_is_400_and_records_one_error_event(
    two_tenants: tuple[Who, Who], tables: Any, query: dict[str, str]
) -> None:
    reply = call(event("GET", "/v1/fine_tuning/jobs", two_tenants[0], query=query))
    assert reply.status == 400
    assert reply.error["param"] in ("limit", "after")
    [recorded] = events_table(tables)  # admitted, so one error event (invariant 4)
    assert recorded["status"] == "error" and recorded["error_class"] == "invalid_request"
    assert recorded["prompt_tokens"] == recorded["completion_tokens"] == 0


def test_get_own_job(two_tenants: tuple[Who, Who]) -> None:
    acme, _ = two_tenants
    job_id = create_job("acme", BEDROCK, "legal")["id"]
    reply = call(event("GET", f"/v1/fine_tuning/jobs/{job_id}", acme))
    assert reply.status == 200
    out = reply.json
    assert out["id"] == job_id and out["model"] == BEDROCK and out["organization_id"] == "acme"


def test_another_tenants_job_is_404_like_a_missing_one(
    two_tenants: tuple[Who, Who], tables: Any
) -> None:
    acme, _ = two_tenants
    theirs = create_job("globex", BEDROCK, "secret-project")["id"]
    missing = new_job_id()
    a = call(event("GET", f"/v1/fine_tuning/jobs/{theirs}", acme))
    b = call(event("GET", f"/v1/fine_tuning/jobs/{missing}", acme))
    assert a.status == b.status == 404
    assert a.error["code"] == b.error["code"] == "fine_tuning_job_not_found"
    assert a.error["message"].replace(theirs, "ID") == b.error["message"].replace(missing, "ID")
    assert "secret-project" not in a.text and "globex" not in a.text and BEDROCK not in a.text
    assert set(a.json) == {"error"}
    probes = [e for e in events_table(tables) if e["operation"] == "fine_tuning.jobs.get"]
    assert {(e["tenant_id"], e["error_class"]) for e in probes} == {
        ("acme", "fine_tuning_job_not_found")
    }


def test_odd_job_ids_are_404_without_a_lookup(two_tenants: tuple[Who, Who]) -> None:
    reply = call(event("GET", "/v1/fine_tuning/jobs/%00..%2F", two_tenants[0]))
    assert reply.status == 404


def test_fine_tuning_is_live_only(two_tenants: tuple[Who, Who], tables: Any) -> None:
    test_key = Who(**{**two_tenants[0].__dict__, "environment": "test"})
    reply = call(event("GET", "/v1/fine_tuning/jobs", test_key))
    assert reply.status == 403 and reply.error["code"] == "wrong_environment"
    assert events_table(tables) == []


# -- the service and the CLI -------------------------------------------------------------
def test_create_job_validates_and_writes_nothing_on_bad_input(dynamodb: Any) -> None:
    make_tenant("acme", make_plan(models=["tollgate-echo"]))
    for args in (
        ("nobody", "tollgate-echo", None),
        ("acme", BEDROCK, None),  # not in acme's plan
        ("acme", "bad model", None),
        ("acme", "tollgate-echo", "way too long suffix " * 5),
        ("acme", "tollgate-echo", "sp ace"),
        ("", "tollgate-echo", None),
    ):
        with pytest.raises(FineTuneInputError):
            create_job(*args)
    assert list(FineTuneJob.scan()) == []


def test_cli_create_prints_the_record_as_json(dynamodb: Any) -> None:
    make_tenant("acme", make_plan(models=["tollgate-echo", BEDROCK]))
    runner = CliRunner()
    result = runner.invoke(
        finetune_app, ["create", "--tenant", "acme", "--base-model", BEDROCK, "--suffix", "v1"],
        obj=type("State", (), {"json": True})(),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["id"].startswith("ftjob-")
    assert (out["tenant_id"], out["base_model"], out["status"]) == ("acme", BEDROCK, "queued")
    assert FineTuneJob.get("acme", out["id"]).suffix == "v1"
    who = who_for("acme", make_key("acme"))
    assert [j["id"] for j in jobs_of(who)["data"]] == [out["id"]]


def test_cli_bad_input_exits_2_with_one_line(dynamodb: Any) -> None:
    make_tenant("acme", make_plan())
    runner = CliRunner()
    result = runner.invoke(finetune_app, ["create", "--tenant", "ghost", "--base-model", "x1"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    assert result.stdout == ""
    assert runner.invoke(finetune_app, ["create", "--tenant", "acme"]).exit_code == 2
    assert list(FineTuneJob.scan()) == []


def test_registered_in_the_tollgate_cli(dynamodb: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from tollgate.cli import app as root
    from tollgate.cli import main

    names = {g.name for g in root.registered_groups}
    if "finetune" not in names:
        pytest.skip("tollgate/cli/__init__.py does not register the finetune group yet")
    make_tenant("acme", make_plan())
    assert main(["--json", "finetune", "create", "--tenant", "acme", "--base-model",
                 "tollgate-echo"]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert out["tenant_id"] == "acme" and out["status"] == "queued"
    assert main(["finetune", "create", "--tenant", "ghost", "--base-model", "x"]) == 2


def test_make_job_helper_round_trips(two_tenants: tuple[Who, Who]) -> None:
    make_job("acme", "ftjob-manual1", BEDROCK, status="succeeded", fine_tuned_model="ft:x")
    out = call(event("GET", "/v1/fine_tuning/jobs/ftjob-manual1", two_tenants[0])).json
    assert out["status"] == "succeeded" and out["fine_tuned_model"] == "ft:x"
