"""The REST API: authorizer (TTL 0, no identity source), routes and gateway responses from the
route table, access logs without secrets, WAF on the stage, and the stack outputs."""

from __future__ import annotations

import json
from typing import Any

from functions.common.routes import GATEWAY_RESPONSES, ROUTES
from tests.infra.cfn import of_type, ref, resource_paths
from tests.infra.conftest import Synth


def one(resources: dict[str, Any], type_: str) -> tuple[str, dict[str, Any]]:
    found = of_type(resources, type_)
    assert len(found) == 1, f"expected one {type_}, found {sorted(found)}"
    return next(iter(found.items()))


def function_id(synth: Synth, output: str) -> str:
    value = synth.outputs[output]["Value"]
    logical_id = ref(value)
    assert logical_id and synth.resources[logical_id]["Type"] == "AWS::Lambda::Function"
    return logical_id


def test_authorizer_checks_every_request_and_demands_no_header(dev: Synth) -> None:
    _, authorizer = one(dev.resources, "AWS::ApiGateway::Authorizer")
    props = authorizer["Properties"]
    assert props["Type"] == "REQUEST"
    assert props["AuthorizerResultTtlInSeconds"] == 0
    assert "IdentitySource" not in props
    assert function_id(dev, "AuthorizerFunctionName") in json.dumps(props["AuthorizerUri"])


def test_every_route_exists_with_the_authorizer_and_the_api_function(dev: Synth) -> None:
    authorizer_id, _ = one(dev.resources, "AWS::ApiGateway::Authorizer")
    api_function = function_id(dev, "ApiFunctionName")
    paths = resource_paths(dev.resources)
    methods = {
        (m["Properties"]["HttpMethod"], paths[str(ref(m["Properties"]["ResourceId"]))]): m[
            "Properties"
        ]
        for m in of_type(dev.resources, "AWS::ApiGateway::Method").values()
    }
    assert set(methods) == {(r.method, r.path) for r in ROUTES}
    for route in ROUTES:
        method = methods[(route.method, route.path)]
        if route.authorized:
            assert method["AuthorizationType"] == "CUSTOM", route
            assert ref(method["AuthorizerId"]) == authorizer_id, route
        else:
            assert method["AuthorizationType"] == "NONE", route
        assert method["Integration"]["Type"] == "AWS_PROXY"
        if route.function == "api":  # others: tests/infra/test_detect_stack.py
            assert api_function in json.dumps(method["Integration"]["Uri"])
        for name in (s[1:-1] for s in route.segments if s.startswith("{")):
            assert method["RequestParameters"][f"method.request.path.{name}"] is True


def _methods(synth: Synth) -> dict[tuple[str, str], dict[str, Any]]:
    paths = resource_paths(synth.resources)
    return {
        (m["Properties"]["HttpMethod"], paths[str(ref(m["Properties"]["ResourceId"]))]): m[
            "Properties"
        ]
        for m in of_type(synth.resources, "AWS::ApiGateway::Method").values()
    }


def test_streaming_routes_stream_for_15_minutes_and_others_stay_buffered(dev: Synth) -> None:
    methods = _methods(dev)
    assert {r.path for r in ROUTES if r.streaming} == {"/v1/chat/completions", "/v1/responses"}
    for route in ROUTES:
        integration = methods[(route.method, route.path)]["Integration"]
        uri = json.dumps(integration["Uri"])
        if route.streaming:
            assert integration["ResponseTransferMode"] == "STREAM", route
            assert integration["TimeoutInMillis"] == 900_000, route
            assert "response-streaming-invocations" in uri, route
        else:
            assert integration.get("ResponseTransferMode", "BUFFERED") == "BUFFERED", route
            assert integration.get("TimeoutInMillis", 29_000) == 29_000, route
            assert "response-streaming-invocations" not in uri, route


def test_api_function_runs_its_streaming_runtime_for_15_minutes(dev: Synth) -> None:
    props = dev.resources[function_id(dev, "ApiFunctionName")]["Properties"]
    assert props["Timeout"] == 900
    assert props["Environment"]["Variables"]["AWS_LAMBDA_EXEC_WRAPPER"] == (
        "/var/task/functions/api/bootstrap"
    )
    policies = [p for p in of_type(dev.resources, "AWS::IAM::Policy").values()]
    actions = json.dumps([p["Properties"]["PolicyDocument"] for p in policies])
    assert "bedrock:InvokeModelWithResponseStream" in actions


def test_the_exec_wrapper_is_executable_and_runs_the_runtime() -> None:
    from pathlib import Path

    wrapper = Path(__file__).resolve().parents[2] / "functions" / "api" / "bootstrap"
    assert wrapper.stat().st_mode & 0o111
    assert "-m functions.api.runtime" in wrapper.read_text()


def test_gateway_responses_carry_the_openai_error_body(dev: Synth) -> None:
    responses = {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in of_type(dev.resources, "AWS::ApiGateway::GatewayResponse").values()
    }
    assert set(responses) == set(GATEWAY_RESPONSES)
    for name, expected in GATEWAY_RESPONSES.items():
        actual = responses[name]
        assert actual["StatusCode"] == str(expected.status), name
        assert actual["ResponseTemplates"] == {"application/json": expected.template}, name
        assert actual.get("ResponseParameters", {}) == {
            f"gatewayresponse.header.{h}": f"'{v}'" for h, v in expected.headers
        }, name
    assert (
        "$context.authorizer.message"
        in responses["ACCESS_DENIED"]["ResponseTemplates"]["application/json"]
    )


def test_access_logs_are_json_without_headers_and_no_data_trace(dev: Synth) -> None:
    _, stage = one(dev.resources, "AWS::ApiGateway::Stage")
    props = stage["Properties"]
    fields = json.loads(props["AccessLogSetting"]["Format"])
    assert {"requestId", "ip", "status", "keyId", "tenantId"} <= set(fields)
    lowered = props["AccessLogSetting"]["Format"].lower()
    for secret_bearing in ("header", "authorization", "x-api-key", "$input", "apikey"):
        assert secret_bearing not in lowered
    (settings,) = props["MethodSettings"]
    assert settings["DataTraceEnabled"] is False
    assert settings["LoggingLevel"] == "ERROR"
    _, rest_api = one(dev.resources, "AWS::ApiGateway::RestApi")
    assert rest_api["Properties"]["EndpointConfiguration"] == {"Types": ["REGIONAL"]}


def test_waf_guards_the_stage_with_managed_rules_and_a_rate_limit(dev: Synth) -> None:
    acl_id, acl = one(dev.resources, "AWS::WAFv2::WebACL")
    _, association = one(dev.resources, "AWS::WAFv2::WebACLAssociation")
    stage_id, _ = one(dev.resources, "AWS::ApiGateway::Stage")
    assert ref(association["Properties"]["WebACLArn"]) == acl_id
    arn = json.dumps(association["Properties"]["ResourceArn"])
    assert f'"/stages/", {{"Ref": "{stage_id}"}}' in arn
    rules = {r["Name"]: r for r in acl["Properties"]["Rules"]}
    rate = rules["RatePerSourceIp"]["Statement"]["RateBasedStatement"]
    assert rate == {"AggregateKeyType": "IP", "Limit": 1000}
    assert {"AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet"} <= set(rules)


def test_outputs_for_the_cli_and_operators(dev: Synth) -> None:
    outputs = dev.outputs
    assert {"ApiUrl", "AuthorizerFunctionName", "ApiFunctionName", "UpstreamSecretArn"} <= set(
        outputs
    )
    (secret,) = [r for lid, r in dev.resources.items()
                 if r["Type"] == "AWS::SecretsManager::Secret" and "Upstream" in lid]  # fmt: skip
    generated = secret["Properties"]["GenerateSecretString"]
    assert json.loads(generated["SecretStringTemplate"]) == {"base_url": ""}
    assert generated["GenerateStringKey"] == "api_key"
