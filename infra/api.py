"""The managed API: REST API, Lambda authorizer, routes and gateway responses.

Routes come from ``functions.common.routes.ROUTES`` and gateway responses from
``functions.common.routes.GATEWAY_RESPONSES``, the same tables the authorizer and the local
gateway use, so the deployed API and ``make local`` cannot drift apart.

The authorizer is a REQUEST authorizer with results caching off (TTL 0: every request is
checked; revocation takes effect on the next call) and no identity sources: a key may come
in ``Authorization: Bearer`` or ``x-api-key``, so API Gateway must not demand either header
(with identity sources it would answer 401 itself, without calling the authorizer, when the
named header is missing). CDK allows an empty list only when caching is off.

Routes the table marks ``streaming`` (the inference routes) use API Gateway's response
streaming: ``responseTransferMode: STREAM`` on a Lambda proxy integration invoked with
``InvokeWithResponseStream``, with a 15-minute integration timeout; the Api function's own
timeout is 15 minutes too, and its exec wrapper (``functions/api/bootstrap``) runs the
function's Runtime API loop that streams (functions/api/runtime.py; docs/architecture.md,
"Streaming"). Other routes stay buffered (29 s).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from functions.common.routes import GATEWAY_RESPONSES, ROUTES
from infra.functions import Functions, FunctionSpec
from infra.nag import acknowledge
from infra.settings import Settings

AUTHORIZER_HANDLER: Final = "functions.authorizer.handler.handler"
API_HANDLER: Final = "functions.api.handler.handler"
UPSTREAM_SECRET_ENV: Final = "TOLLGATE_UPSTREAM_SECRET_ARN"  # noqa: S105 - a variable name
# The Api function's exec wrapper: its own Runtime API loop, which can stream responses.
API_EXEC_WRAPPER: Final = "/var/task/functions/api/bootstrap"
STREAM_TIMEOUT: Final = Duration.minutes(15)  # API Gateway's streaming limit and Lambda's
# Why a route without the key authorizer is safe, per serving function (cdk-nag APIG4/COG4).
UNAUTHORIZED_REASONS: Final = {
    "webhook": "POST /webhooks/github/secret-scanning is called by a third party that cannot "
    "hold a Tollgate key; its handler verifies the caller's signature.",
    "token": "POST /v1/auth/token is how a workload obtains a Tollgate key, so it cannot "
    "require one: the function verifies the caller's OIDC token (signature with the "
    "issuer's published keys, issuer, audience, expiry) against the tenant's trust "
    "policies, bounds replays and rate-limits per subject; the WAF rate-limits the path "
    "per source IP (infra/trust.py, infra/waf.py).",
}

F = apigw.AccessLogField
# JSON access log line: who called what, from where, with which key id, and how it ended.
# No header is logged (the Authorization and x-api-key headers carry secrets); the key id
# and tenant come from the authorizer's context and are not secret.
ACCESS_LOG_FIELDS: Final = {
    "requestId": F.context_request_id(),
    "extendedRequestId": F.context_extended_request_id(),
    "requestTime": F.context_request_time(),
    "ip": F.context_identity_source_ip(),
    "userAgent": F.context_identity_user_agent(),
    "httpMethod": F.context_http_method(),
    "resourcePath": F.context_resource_path(),
    "protocol": F.context_protocol(),
    "status": F.context_status(),
    "responseLength": F.context_response_length(),
    "responseLatency": F.context_response_latency(),
    "integrationLatency": F.context_integration_latency(),
    "authorizerStatus": F.context_authorizer_integration_status(),
    "authorizerLatency": F.context_authorizer_latency(),
    "errorType": F.context_error_response_type(),
    "tenantId": F.context_authorizer("tenant_id"),
    "keyId": F.context_authorizer("key_id"),
    "principal": F.context_authorizer("principal"),
    "decision": F.context_authorizer("code"),
    "wafStatus": F.context_waf_response_code(),
}


class Api(Construct):
    """The REST API, its authorizer function, the managed API function and the upstream secret."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        functions: Functions,
        route_functions: Mapping[str, lambda_.IFunction] | None = None,
    ) -> None:
        """``route_functions``: the function serving each ``Route.function`` other than
        ``api`` (e.g. the leak webhook's, built by infra/detect.py)."""
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.route_functions = dict(route_functions or {})

        self.upstream_secret = secretsmanager.Secret(
            self,
            "UpstreamSecret",
            description=(
                "Tollgate: the OpenAI-compatible upstream, JSON {base_url, api_key}. "
                "Put the real values with `aws secretsmanager put-secret-value`."
            ),
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps({"base_url": ""}),
                generate_string_key="api_key",
                exclude_punctuation=True,
            ),
            removal_policy=settings.removal_policy,
        )
        acknowledge(
            self.upstream_secret,
            "AwsSolutions-SMG4",
            "The secret holds an API key issued by an external model provider; only that "
            "provider can mint a new one, so a rotation Lambda cannot rotate it. Operators "
            "rotate it at the provider and store it with put-secret-value (docs/runbook.md).",
        )

        self.authorizer_function = functions.add(
            FunctionSpec(
                "Authorizer",
                AUTHORIZER_HANDLER,
                service="authorizer",
                description="Tollgate: checks and counts every request (REQUEST authorizer)",
                tables={
                    "secrets": ("dynamodb:GetItem",),
                    # key write + shard write; a shard read on a tenant's first request in a
                    # container; BatchGetItem when borrowing allocation between shards
                    "gate": ("dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:UpdateItem"),
                },
                memory_size=512,  # more memory is more CPU: a shorter cold start
                timeout=Duration.seconds(5),
                p99_alarm_ms=1000,  # two DynamoDB round trips; only cold starts come near
            )
        )
        self.api_function = functions.add(
            FunctionSpec(
                "Api",
                API_HANDLER,
                service="api",
                description="Tollgate: the managed, OpenAI-compatible API",
                tables={
                    # token reserve / settle on the gate's items (and borrowing between shards),
                    # and each reservation's marker (functions/gate/reservations.py); no access
                    # to the tenants table: the Api cannot change a plan or status
                    "gate": (
                        "dynamodb:BatchGetItem",
                        "dynamodb:UpdateItem",
                        "dynamodb:PutItem",
                        "dynamodb:DeleteItem",
                    ),
                    "usage": ("dynamodb:PutItem",),
                    "plans": ("dynamodb:GetItem",),
                    "jobs": ("dynamodb:GetItem", "dynamodb:Query"),
                },
                statements=[
                    iam.PolicyStatement(
                        # Converse and InvokeModel (Titan embeddings) are authorised by
                        # bedrock:InvokeModel, ConverseStream by
                        # bedrock:InvokeModelWithResponseStream; only the models listed in
                        # the bedrock_models context (an embeddings model too, if used).
                        actions=["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
                        resources=[
                            stack.format_arn(
                                service="bedrock",
                                account="",
                                resource="foundation-model",
                                resource_name=model,
                            )
                            for model in settings.bedrock_models
                        ],
                    ),
                    iam.PolicyStatement(
                        actions=["secretsmanager:GetSecretValue"],
                        resources=[self.upstream_secret.secret_arn],
                    ),
                ],
                environment={
                    UPSTREAM_SECRET_ENV: self.upstream_secret.secret_arn,
                    "AWS_LAMBDA_EXEC_WRAPPER": API_EXEC_WRAPPER,
                },
                memory_size=512,
                timeout=STREAM_TIMEOUT,  # a streamed (or long) model call: up to 15 minutes
            )
        )

        self.rest_api = self._rest_api(settings)
        self.authorizer = apigw.RequestAuthorizer(
            self,
            "RequestAuthorizer",
            handler=self.authorizer_function,
            identity_sources=[],
            results_cache_ttl=Duration.seconds(0),
        )
        # CDK renders the empty list as IdentitySource: "" -- drop the property instead, so
        # the template says what we mean: no identity source, API Gateway calls us every time.
        cfn_authorizer = self.authorizer.node.default_child
        assert isinstance(cfn_authorizer, apigw.CfnAuthorizer)
        cfn_authorizer.add_property_deletion_override("IdentitySource")
        self._routes()
        self._gateway_responses()

        for output_id, value in (
            ("ApiUrl", self.rest_api.url),
            ("OpenAiBaseUrl", f"{self.rest_api.url}v1"),
            ("AuthorizerFunctionName", self.authorizer_function.function_name),
            ("ApiFunctionName", self.api_function.function_name),
            ("UpstreamSecretArn", self.upstream_secret.secret_arn),
        ):
            CfnOutput(self, output_id, value=value).override_logical_id(output_id)

    def _rest_api(self, settings: Settings) -> apigw.RestApi:
        access_logs = self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=settings.log_retention,
            removal_policy=settings.removal_policy,
        )
        api = apigw.RestApi(
            self,
            "RestApi",
            rest_api_name=settings.stack_name,
            description="Tollgate: governed, metered access to AI models",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # API Gateway needs an account-level role to write access and execution logs. It
            # is one setting per account and region, shared by every stack deployed side by
            # side, so the role is retained even when a dev stack is destroyed.
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            deploy_options=apigw.StageOptions(
                stage_name=settings.stage_name,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS)),
                # Execution logs for errors only; never data traces (they include headers).
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                metrics_enabled=True,
            ),
        )
        api.node.try_remove_child("Endpoint")  # the stack's ApiUrl output says the same
        acknowledge(
            api,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            "The account-level role API Gateway uses to write access and execution logs; AWS "
            "documents this managed policy for exactly that role and maintains it.",
        )
        self.request_validator = api.add_request_validator(
            "PathParameters", validate_request_parameters=True, validate_request_body=False
        )
        acknowledge(
            api,
            "AwsSolutions-APIG2",
            "Every method has a request validator for its parameters. Bodies are validated by "
            "the API function (pydantic), which answers the OpenAI-style typed error clients "
            "expect; a gateway model would answer an untyped 400 and duplicate the schema.",
        )
        return api

    def _routes(self) -> None:
        serving = {"api": self.api_function, **self.route_functions}
        integrations = {
            name: apigw.LambdaIntegration(fn, proxy=True, allow_test_invoke=False)
            for name, fn in serving.items()
        }
        streaming = {
            name: apigw.LambdaIntegration(
                fn,
                proxy=True,
                allow_test_invoke=False,
                response_transfer_mode=apigw.ResponseTransferMode.STREAM,
                timeout=STREAM_TIMEOUT,
            )
            for name, fn in serving.items()
            if any(r.streaming and r.function == name for r in ROUTES)
        }
        for route in ROUTES:
            # KeyError: a route nobody serves
            integration = (streaming if route.streaming else integrations)[route.function]
            resource = self.rest_api.root.resource_for_path(route.path)
            path_params = {
                f"method.request.path.{segment[1:-1]}": True
                for segment in route.segments
                if segment.startswith("{")
            }
            method = resource.add_method(
                route.method,
                integration,
                operation_name=route.operation,
                authorizer=self.authorizer if route.authorized else None,
                authorization_type=(
                    apigw.AuthorizationType.CUSTOM
                    if route.authorized
                    else apigw.AuthorizationType.NONE
                ),
                request_parameters=path_params or None,
                request_validator=self.request_validator,
            )
            if route.authorized:
                acknowledge(
                    method,
                    "AwsSolutions-COG4",
                    "Callers are machines holding Tollgate API keys, not Cognito users: this "
                    "method uses the Lambda REQUEST authorizer, which checks the key, its "
                    "status, scope, environment and limits on every request (cache TTL 0).",
                )
            else:
                for rule in ("AwsSolutions-APIG4", "AwsSolutions-COG4"):
                    acknowledge(method, rule, UNAUTHORIZED_REASONS[route.function])

    def _gateway_responses(self) -> None:
        for name, response in GATEWAY_RESPONSES.items():
            headers = {}
            for header, value in response.headers:
                if "'" in value:
                    raise ValueError(f"gateway response {name}: header {header} holds a quote")
                headers[header] = f"'{value}'"  # a static value is a quoted literal
            self.rest_api.add_gateway_response(
                f"Response{name.title().replace('_', '')}",
                type=apigw.ResponseType.of(name),  # the CloudFormation name, checked by cfn-lint
                status_code=str(response.status),
                response_headers=headers or None,
                templates={"application/json": response.template},
            )
