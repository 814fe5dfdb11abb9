"""Per-model prices end to end on moto (issue 14, items 1, 2, 6 and the cost the caller is
told): ``tollgate prices set/list`` and plan overrides, the price fixed into each usage
event, cached and reasoning tokens from an OpenAI-compatible upstream (a real HTTP server
on 127.0.0.1) into the rollups (the real aggregator) and the statement, the cost header
and the last stream chunk, and the one ``unknown`` line for names nobody priced."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from functions.api.config import ApiSettings
from functions.api.services import Services
from functions.common import ddb
from functions.common.config import TableNames
from functions.keys import KeyService
from functions.pricing.money import Price, Tokens, cost_micros, usd
from functions.statements.service import statement
from functions.usage import handler as usage_handler
from functions.usage.logic import periods
from functions.usage.reports import usage_rows
from tests.integration.api_events import (
    RoundTrips,
    call,
    chat,
    event,
    events_table,
    fresh_api,
    make_key,
    make_plan,
    make_tenant,
    who_for,
)
from tests.integration.conftest import Result, Run
from tests.integration.test_api_providers import FakeUpstream, _secret, _with_upstream
from tests.usage_support import Context, lambda_event, stream_record

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")
TABLES = TableNames()
MINI = "upstream:gpt-4o-mini"


@pytest.fixture
def tables(dynamodb: Any) -> Iterator[Any]:
    fresh_api()
    yield dynamodb
    fresh_api()


def aggregate(dynamodb: Any) -> list[dict[str, Any]]:
    """Run the real aggregator over every usage event in the table (as stream records)."""
    ddb.reset_client()
    usage_handler.use_store(None)
    items = events_table(dynamodb)
    records = [
        stream_record(item, 7_000_000_000_000_000_000_000 + i) for i, item in enumerate(items)
    ]
    response = usage_handler.handler(lambda_event(records), Context())
    assert response["batchItemFailures"] == []
    usage_handler.use_store(None)
    return items


def month(item: dict[str, Any]) -> str:
    return periods(int(item["ts"]))["month"]


def priced_services(ttl_s: float = 0.0) -> Services:
    services = Services.build(ApiSettings(price_ttl_s=ttl_s))
    fresh_api(services)
    return services


def sse_chunks(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in text.splitlines()
            if line.startswith("data:") and line.strip() != "data: [DONE]"]  # fmt: skip


# -- the CLI -------------------------------------------------------------------------------
def test_prices_set_and_list(cli: Run) -> None:
    out = cli("prices", "set", MINI, "--prompt", "0.2", "--completion", "0.8",
              "--cached-prompt", "0.1").ok().json  # fmt: skip
    assert out["model"] == MINI and out["source"] == "operator"
    assert (out["prompt_usd_per_1m"], out["completion_usd_per_1m"]) == ("0.200000", "0.800000")
    assert (out["cached_prompt_usd_per_1m"], out["reasoning_usd_per_1m"]) == ("0.100000", None)
    cli("plans", "create", "gold", "--models", f"tollgate-echo,{MINI},upstream:o3",
        "--price", "upstream:o3=1.5:6:0.5:9").ok()  # fmt: skip
    listed = cli("prices", "list").ok().json
    rows = {r["model"]: r for r in listed["prices"]}
    assert rows[MINI]["source"] == "operator" and rows[MINI]["snapshot"] is None
    # genai-prices defaults for the models plans list and the well-known ones
    assert rows["upstream:o3"]["source"] == "genai-prices"
    assert rows["upstream:o3"]["snapshot"] == "genai-prices 0.2.5"
    assert rows["bedrock:anthropic.claude-3-haiku-20240307-v1:0"]["prompt_usd_per_1m"] == "0.250000"
    assert listed["genai_prices"]["version"] == "0.2.5"
    [override] = listed["plan_prices"]
    assert (override["plan"], override["model"], override["reasoning_usd_per_1m"]) == (
        "gold", "upstream:o3", "9.000000"
    )  # fmt: skip
    # a second set of the same model replaces its price; other models keep theirs
    cli("prices", "set", "tollgate-echo", "--prompt", "1", "--completion", "1").ok()
    cli("prices", "set", MINI, "--prompt", "0.3", "--completion", "0.9").ok()
    rows = {r["model"]: r for r in cli("prices", "list").ok().json["prices"]}
    assert rows[MINI]["prompt_usd_per_1m"] == "0.300000"
    assert rows[MINI]["cached_prompt_usd_per_1m"] is None
    assert rows["tollgate-echo"]["source"] == "operator"
    # the reserved item is no plan
    assert [p["name"] for p in cli("plans", "list").ok().json] == ["gold"]
    human = cli("prices", "list", json=False).ok().out
    assert "genai-prices 0.2.5" in human and MINI in human
    shown = cli("plans", "show", "gold").ok().json["model_prices"]
    o3 = {"prompt": "1.500000", "completion": "6.000000", "cached_prompt": "0.500000",
          "reasoning": "9.000000"}  # fmt: skip
    assert shown == {"upstream:o3": o3}
    assert "upstream:o3" in cli("plans", "show", "gold", json=False).ok().out
    audit = cli("audit").ok().json
    assert [a["action"] for a in audit].count("price.set") == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (("nope", "--prompt", "1", "--completion", "1"), "unknown model"),
        (("gpt-4o", "--prompt", "1", "--completion", "1"), "unknown model"),
        ((MINI, "--prompt", "-1", "--completion", "1"), "negative"),
        ((MINI, "--prompt", "1", "--completion", "1000001"), "implausibly large"),
        ((MINI, "--prompt", "one", "--completion", "1"), "decimal number"),
        ((MINI, "--prompt", "1", "--completion", "1", "--cached-prompt", "NaN"), "finite"),
        ((MINI, "--prompt", "1", "--completion", "1", "--reasoning", "0.0000001"), "decimals"),
    ],
)
def test_bad_prices_exit_2_and_write_nothing(bad_input: Any, args: tuple[str, ...],
                                             message: str) -> None:  # fmt: skip
    result: Result = bad_input("prices", "set", *args)
    assert message in result.err


BAD_OVERRIDES = [
    ("upstream:o3=1:2", "does not list"),
    ("nope=1:2", "unknown model"),
    (f"{MINI}=1", "PROMPT:COMPLETION"),
    (f"{MINI}=1:-2", "negative"),
]


@pytest.mark.parametrize("spec, message", BAD_OVERRIDES)
def test_bad_plan_price_overrides_exit_2(bad_input: Any, spec: str, message: str) -> None:
    result = bad_input("plans", "create", "p", "--models", MINI, "--price", spec)
    assert message in result.err, result.err


# -- the price fixed into each event ---------------------------------------------------------
def test_an_event_keeps_the_price_it_was_charged_at(tables: Any) -> None:
    make_tenant("acme", make_plan(models=["tollgate-echo"]))  # no flat price: the catalogue decides
    who = who_for("acme", make_key("acme"))
    svc = KeyService()
    svc.set_price("tollgate-echo", prompt="1", completion="2", actor="test")
    priced_services(ttl_s=0)  # every request reads the operator's prices
    first = chat(who, "one two three", max_tokens=5)
    assert first.status == 200, first.text
    svc.set_price("tollgate-echo", prompt="10", completion="30", cached_prompt="5", actor="test")
    second = chat(who, "one two three", max_tokens=5)
    assert second.status == 200
    by_price = {e["price_prompt"]: e for e in events_table(tables)}
    old, new = by_price[1_000_000], by_price[10_000_000]
    assert (old["price_completion"], old["price_source"], old.get("price_cached_prompt")) == (
        2_000_000, "operator", None
    )  # fmt: skip
    assert (new["price_completion"], new["price_cached_prompt"]) == (30_000_000, 5_000_000)
    for item, reply in ((old, first), (new, second)):
        tokens = Tokens(item["prompt_tokens"], item["completion_tokens"])
        price = Price(item["price_prompt"], item["price_completion"])
        assert item["cost_micros"] == cost_micros(price, tokens)
        assert reply.headers["x-tollgate-cost-usd"] == usd(item["cost_micros"])
    # a third price change rewrites nothing already written
    svc.set_price("tollgate-echo", prompt="0", completion="0", actor="test")
    assert chat(who, "x").headers["x-tollgate-cost-usd"] == "0.000000"
    assert {e["price_prompt"]: e["cost_micros"] for e in events_table(tables)} == {
        1_000_000: old["cost_micros"], 10_000_000: new["cost_micros"], 0: 0
    }  # fmt: skip
    items = aggregate(tables)
    result = statement("acme", month(items[0])).as_dict()
    assert result["totals"]["amount_micros"] == old["cost_micros"] + new["cost_micros"]
    assert result["totals"]["cost_usd"] == usd(old["cost_micros"] + new["cost_micros"])


def test_precedence_through_the_api(tables: Any) -> None:
    """plan override > plan flat > operator > genai-prices > free, each fixed with its source."""
    flat = make_plan("flat", models=["tollgate-echo", MINI], price_prompt_micros_per_1k=3,
              price_completion_micros_per_1k=4)  # fmt: skip
    over = make_plan("over", models=["tollgate-echo", MINI], price_prompt_micros_per_1k=3,
              price_completion_micros_per_1k=4,
              model_prices={"tollgate-echo": {"prompt": 7, "completion": 8}})  # fmt: skip
    make_plan("catalogue", models=["tollgate-echo"])
    make_tenant("over", over)
    assert flat.name == "flat"

    services = priced_services(ttl_s=60)
    prices, plans = services.prices, services.plans
    assert prices.of(plans.get("over"), "tollgate-echo").source == "plan-override"
    assert prices.of(plans.get("over"), MINI).source == "plan"
    assert prices.of(plans.get("flat"), MINI).prompt == 3000
    assert prices.round_trips == 0  # the plan decided: the catalogue is never read
    assert prices.of(plans.get("catalogue"), "tollgate-echo").source == "free"
    assert prices.of(plans.get("catalogue"), MINI).source == "genai-prices"
    KeyService().set_price(MINI, prompt="0.5", completion="0.5", actor="test")
    assert prices.of(plans.get("catalogue"), MINI).source == "genai-prices"  # cached < ttl
    prices.forget()
    assert prices.of(plans.get("catalogue"), MINI).source == "operator"
    assert prices.round_trips == 2
    who = who_for("over", make_key("over"))
    assert chat(who, "a b").status == 200
    [item] = events_table(tables)
    assert (item["price_source"], item["price_prompt"], item["price_completion"]) == (
        "plan-override", 7, 8
    )  # fmt: skip


def test_steady_state_asks_dynamodb_nothing_for_a_price(tables: Any) -> None:
    make_tenant("acme", make_plan(models=["tollgate-echo"]))
    who = who_for("acme", make_key("acme"))
    KeyService().set_price("tollgate-echo", prompt="1", completion="1", actor="test")
    services = priced_services(ttl_s=60)
    assert chat(who, "warm").status == 200  # reads the plan and the price book once
    with RoundTrips() as trips:
        for i in range(5):
            assert chat(who, f"request {i}").status == 200
    assert "GetItem" not in trips.calls  # neither the plan nor the prices are read again
    assert services.prices.round_trips == 1


# -- cached and reasoning tokens, from the upstream to the statement -------------------------
@pytest.fixture
def upstream(moto_server: Any) -> Iterator[FakeUpstream]:
    server = FakeUpstream()
    yield server
    server.close()


def test_cached_and_reasoning_tokens_reach_rollups_and_the_statement(
    tables: Any, upstream: FakeUpstream
) -> None:
    # USD per 1M: prompt 1, completion 4, cached prompt 0.25, reasoning 8 (micro-dollars x 1e6)
    gold = make_plan("gold", models=["tollgate-echo", MINI], model_prices={
        MINI: {"prompt": 1_000_000, "completion": 4_000_000, "cached_prompt": 250_000,
               "reasoning": 8_000_000}})  # fmt: skip
    make_tenant("acme", gold, tokens_per_month=100_000)
    who = who_for("acme", make_key("acme"))
    _with_upstream(_secret(upstream), [])
    upstream.usage_details = {"prompt_tokens_details": {"cached_tokens": 8},
                              "completion_tokens_details": {"reasoning_tokens": 1}}  # fmt: skip
    whole = chat(who, "hello", model=MINI, max_tokens=20)
    assert whole.status == 200, whole.text
    usage = whole.json["usage"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 8}
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 1}
    # 1 fresh x 1 + 8 cached x 0.25 + 1 completion x 4 + 1 reasoning x 8 = 15 micro-dollars
    assert whole.headers["x-tollgate-cost-usd"] == "0.000015"
    upstream.usage_details["completion_tokens_details"] = {"reasoning_tokens": 4}
    streamed = chat(who, "hello", model=MINI, max_tokens=20, stream=True,
                    stream_options={"include_usage": True})  # fmt: skip
    assert streamed.status == 200
    last = sse_chunks(streamed.text)[-1]["usage"]
    # 1 x 1 + 8 x 0.25 + 2 x 4 + 4 x 8 = 43 micro-dollars (6 completion tokens, 4 reasoning)
    assert last["cost_usd"] == "0.000043"
    assert last["prompt_tokens_details"] == {"cached_tokens": 8}
    events = sorted(events_table(tables), key=lambda e: e["cost_micros"])
    assert [(e["cached_tokens"], e["reasoning_tokens"], e["cost_micros"]) for e in events] == [
        (8, 1, 15), (8, 4, 43)
    ]  # fmt: skip
    assert {e["price_source"] for e in events} == {"plan-override"}
    items = aggregate(tables)
    period = month(items[0])
    [row] = usage_rows("acme", granularity="month", period=period, dimension="model", value=MINI)
    assert (row["cached_tokens"], row["reasoning_tokens"], row["cost_micros"]) == (16, 5, 58)
    result = statement("acme", period).as_dict()
    [line] = result["line_items"]
    assert (line["model"], line["cached_tokens"], line["reasoning_tokens"]) == (MINI, 16, 5)
    assert line["cost_usd"] == line["amount_usd"] == "0.000058"
    assert result["totals"]["cached_tokens"] == 16
    csv_text = statement("acme", period).to_csv()
    header = csv_text.splitlines()[0].split(",")
    assert "cached_tokens" in header and "reasoning_tokens" in header and "cost_usd" in header


# -- what the caller is told -----------------------------------------------------------------
def test_cost_header_and_the_last_stream_chunk(tables: Any) -> None:
    make_tenant("acme", make_plan(models=["tollgate-echo"], price_prompt_micros_per_1k=1500,
                                  price_completion_micros_per_1k=2000))  # fmt: skip
    who = who_for("acme", make_key("acme"))
    whole = chat(who, "a secret prompt about llamas", max_tokens=4)
    assert whole.headers["x-tollgate-cost-usd"] == "0.000019"  # 7 x 1500 + 4 x 2000 / 1000
    streamed = chat(who, "a secret prompt about llamas", max_tokens=4, stream=True,
                    stream_options={"include_usage": True})  # fmt: skip
    chunks = sse_chunks(streamed.text)
    assert chunks[-1]["usage"]["cost_usd"] == "0.000019"
    assert all(c.get("usage") is None for c in chunks[:-1])
    assert "x-tollgate-cost-usd" not in streamed.headers  # sent before the cost was known
    emb = call(event("POST", "/v1/embeddings", who,
                     body={"model": "tollgate-echo", "input": ["one two", "three"]}))  # fmt: skip
    assert emb.status == 200, emb.text
    item = next(e for e in events_table(tables) if e["operation"] == "embeddings.create")
    assert emb.headers["x-tollgate-cost-usd"] == usd(item["cost_micros"])
    resp = call(event("POST", "/v1/responses", who, body={"model": "tollgate-echo",
                                                          "input": "hi there"}))  # fmt: skip
    assert resp.status == 200, resp.text
    assert resp.headers["x-tollgate-cost-usd"] == usd(
        next(e for e in events_table(tables) if e["operation"] != "chat.completions"
             and e["operation"] != "embeddings.create")["cost_micros"]
    )  # fmt: skip
    refused = chat(who, "x", model="upstream:not-in-the-plan")
    assert refused.status == 404 and "x-tollgate-cost-usd" not in refused.headers


# -- invoice integrity -----------------------------------------------------------------------
def test_unknown_names_fold_into_one_unknown_line(tables: Any) -> None:
    make_tenant("acme", make_plan(models=["tollgate-echo"]))
    who = who_for("acme", make_key("acme"))
    assert chat(who, "fine").status == 200
    assert call(event("POST", "/v1/tools/nope/invoke", who, body={})).status == 404
    assert chat(who, "x", model="made-up-model").status == 404
    assert chat(who, "x", model="upstream:not-listed").status == 404
    assert call(event("GET", "/v1/models/imaginary", who)).status == 404
    models = sorted(e["model"] for e in events_table(tables))
    assert models == ["tollgate-echo", "unknown", "unknown", "unknown", "unknown"]
    items = aggregate(tables)
    lines = statement("acme", month(items[0])).as_dict()["line_items"]
    assert sorted(line["model"] for line in lines) == ["tollgate-echo", "unknown"]
    unknown = next(line for line in lines if line["model"] == "unknown")
    assert (unknown["requests"], unknown["errors"], unknown["amount_micros"]) == (4, 4, 0)


# -- through the local gateway, with the OpenAI SDK as the client ----------------------------
@pytest.fixture
def gateway(tables: Any) -> Iterator[str]:
    import threading

    from werkzeug.serving import make_server

    from tests.integration import test_api_streaming
    from tollgate.local.gateway import LocalGateway

    plan = make_plan(models=["tollgate-echo"], price_prompt_micros_per_1k=1500,
                     price_completion_micros_per_1k=2000)  # fmt: skip
    make_tenant("acme", plan)
    test_api_streaming._WHO["who"] = who_for("acme", make_key("acme"))
    gate = LocalGateway(authorizer="tests.integration.test_api_streaming.allow")
    server = make_server("127.0.0.1", 0, gate, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_the_sdk_reads_the_cost_from_the_header_and_the_last_chunk(
    gateway: str, tables: Any
) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="tg_live_x", max_retries=0)
    messages: Any = [{"role": "user", "content": "a secret prompt about llamas"}]
    raw = client.chat.completions.with_raw_response.create(
        model="tollgate-echo", messages=messages, max_tokens=4
    )
    assert raw.headers["x-tollgate-cost-usd"] == "0.000019"
    assert raw.parse().usage is not None
    stream = client.chat.completions.create(
        model="tollgate-echo", messages=messages, max_tokens=4, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    last = list(stream)[-1]
    assert last.usage is not None and last.usage.model_dump()["cost_usd"] == "0.000019"
    assert sorted(e["cost_micros"] for e in events_table(tables)) == [19, 19]
