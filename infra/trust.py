"""The token route's function (``POST /v1/auth/token``, functions/trust/): OIDC token in,
short-lived delegated key out.

Its own function, so PyJWT and the key cache never load into the authorizer's or the Api's
cold start. The route has no key authorizer (it is how a key is obtained): it sits behind
the stack's WAF (infra/waf.py, with a rate rule of its own for this path) and the function
verifies the OIDC token, counts exchanges per issuer/subject and bounds replays itself.

Least privilege, per table, for what one exchange does (functions/trust/exchange.py):

* ``trust``: Query of the ``by_issuer`` index (the issuer's policies); nothing else -- the
  function can never create, change or delete a policy;
* ``keys`` / ``secrets``: GetItem of the policy's root key; PutItem of the new key's items,
  DeleteItem to undo a half-created one (``functions/keys/lifecycle.py``);
* ``tenants``: GetItem (the tenant is active, its plan's scopes);
* ``gate``: GetItem (the root's status), PutItem (the new key's item), UpdateItem (the
  exchange counter, the replay marker, a parent status raced with);
* ``audit``: PutItem (``key.delegated`` and ``trust.exchanged``).

Outbound HTTPS to the issuers' discovery documents and key sets (no VPC, like every
function of the stack). Nothing in the environment enables ``http://`` issuers: that is
for ``make local`` and the tests only (functions/trust/config.py).
"""

from __future__ import annotations

from typing import Final

from aws_cdk import CfnOutput, Duration
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from functions.common.routes import HANDLERS
from infra.functions import Functions, FunctionSpec

TOKEN_TABLES: Final = {
    "trust": ("dynamodb:Query",),
    "keys": ("dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem"),
    "secrets": ("dynamodb:DeleteItem", "dynamodb:PutItem"),
    "tenants": ("dynamodb:GetItem",),
    "gate": ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"),
    "audit": ("dynamodb:PutItem",),
}


class TokenExchange(Construct):
    """The function serving ``Route.function == "token"`` (``route_functions`` for Api)."""

    def __init__(self, scope: Construct, construct_id: str, *, functions: Functions) -> None:
        super().__init__(scope, construct_id)
        self.function = functions.add(
            FunctionSpec(
                "TokenExchange",
                HANDLERS["token"],
                service="token",
                description="Tollgate: OIDC token -> short-lived key (RFC 8693 token exchange)",
                tables=TOKEN_TABLES,
                memory_size=512,  # RSA/EC verification and a TLS fetch on a cold start
                timeout=Duration.seconds(10),  # discovery + key set: two 3 s fetches at most
                p99_alarm_ms=3000,
            )
        )
        self.route_functions: dict[str, lambda_.IFunction] = {"token": self.function}
        CfnOutput(
            self, "TokenExchangeFunctionName", value=self.function.function_name
        ).override_logical_id("TokenExchangeFunctionName")
