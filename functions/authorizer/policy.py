"""The IAM policy the authorizer answers with (pure: no I/O, nothing that can fail on a path).

The policy's only Resource is the event's ``methodArn``, verbatim. API Gateway builds that
ARN from the request's own path, so it holds whatever characters the client sent (``~ ' ! @
( ) , ; = :`` and more); re-assembling it from parts (Powertools' ``allow_route``) refused
most of them with ``ValueError`` (a 503 after the gate had counted the request) and cut
the path at its first ``:`` (an Allow for another resource, so a 403). The echo cannot:

* it needs no parsing, so no path can make it fail;
* it names this method ARN and nothing wider: an IAM pattern always matches its own text
  (a ``*`` matches itself, a ``?`` matches itself), so the Allow (or Deny) applies to this
  request whatever its path. A ``*`` or ``?`` in the path also acts as a wildcard for
  *other* ARNs (IAM has no escape); that is harmless here because the authorizer's result
  cache is off (TTL 0, ``infra/api.py``): API Gateway evaluates each policy against the
  one request it was returned for and never again.

docs/architecture.md ("The policy: this method ARN, verbatim") records what is verified
about the method ARN and what is not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

Effect = Literal["Allow", "Deny"]
_PREFIX: Final = "arn:"
_SERVICE: Final = ":execute-api:"


class MalformedMethodArn(ValueError):
    """The event has no usable ``methodArn``: not API Gateway's REQUEST event."""


def method_arn(raw: Mapping[str, Any]) -> str:
    """The event's ``methodArn``, checked before anything is counted.

    Only its shape is checked (an ``execute-api`` ARN with a resource part); its path is
    taken as it is, whatever characters it holds."""
    value = raw.get("methodArn")
    if (
        not isinstance(value, str)
        or not value.startswith(_PREFIX)
        or _SERVICE not in value
        or value.count(":") < 5
    ):
        raise MalformedMethodArn("the event has no execute-api methodArn")
    return value


def policy(
    arn: str, effect: Effect, principal_id: str, context: Mapping[str, str]
) -> dict[str, Any]:
    """The authorizer's answer: ``effect`` on exactly ``arn``, with ``context``."""
    return {
        "principalId": principal_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": [arn]}],
        },
        "context": dict(context),
    }
