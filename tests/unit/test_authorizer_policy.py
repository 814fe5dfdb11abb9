"""The authorizer's policy (functions/authorizer/policy.py) and how the local gateway matches
it as IAM does (tollgate/local/gateway.py): issue 11, finding 3 ("path characters crash the
authorizer after the request was counted"). No I/O."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.authorizer import policy
from functions.common.routes import ROUTES, route_for
from tollgate.local.gateway import LocalGateway, _arn_matches, policy_allows

JOB = route_for("GET", "/v1/fine_tuning/jobs/{id}")
assert JOB is not None
# The characters the finding names (Powertools refused them or cut the path at ':'), and
# the two IAM wildcards.
FINDING = ["~", "'", "!", "@", "(", ")", ",", ";", "=", ":"]
WILDCARDS = ["*", "?"]
MORE = [" ", "$", "&", "+", "%", '"', "\n", "\x00", "é", "\u200b", "[", "]", "{", "}", "|"]


def arn_for(path: str, method: str = "GET") -> str:
    return f"arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/{method}{path}"


def answer(arn: str, effect: policy.Effect) -> dict[str, Any]:
    return policy.policy(arn, effect, "key_1", {"verdict": "allow"})


@pytest.mark.parametrize("ch", FINDING + WILDCARDS + MORE)
def test_path_characters_policy_is_the_method_arn_verbatim(ch: str) -> None:
    arn = arn_for(f"/v1/fine_tuning/jobs/a{ch}b")
    allow = answer(arn, "Allow")
    assert allow["policyDocument"]["Statement"] == [
        {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": [arn]}
    ]
    assert allow["principalId"] == "key_1" and allow["context"] == {"verdict": "allow"}
    assert policy_allows(allow, arn) is True
    assert policy_allows(answer(arn, "Deny"), arn) is False  # a revoked key: 403, any path


@pytest.mark.parametrize("ch", FINDING)
def test_path_characters_policy_names_no_other_method_arn(ch: str) -> None:
    arn = arn_for(f"/v1/fine_tuning/jobs/a{ch}b")
    allow = answer(arn, "Allow")
    others = [
        arn_for("/v1/fine_tuning/jobs/a"),  # what the cut at ':' used to allow
        arn_for("/v1/fine_tuning/jobs/ab"),
        arn_for(f"/v1/fine_tuning/jobs/a{ch}bc"),
        arn_for(f"/v1/fine_tuning/jobs/a{ch}b/x"),
        arn_for(f"/v1/fine_tuning/jobs/a{ch}b", method="POST"),
        arn.replace("/prod/", "/dev/"),
        arn.replace("abcdef1234", "other12345"),
    ]
    assert [policy_allows(allow, other) for other in others] == [False] * len(others)


@pytest.mark.parametrize("ch", WILDCARDS)
def test_path_characters_wildcards_still_match_their_own_request(ch: str) -> None:
    """IAM has no escape: a ``*`` or ``?`` in the path is a wildcard in the echoed Resource.
    It matches its own request (a pattern matches its own text), which is the only request
    API Gateway evaluates it for while the result cache is off (TTL 0, asserted by
    tests/infra/test_api.py::test_authorizer_checks_every_request_and_demands_no_header)."""
    arn = arn_for(f"/v1/fine_tuning/jobs/a{ch}b")
    assert policy_allows(answer(arn, "Allow"), arn) is True
    assert policy_allows(answer(arn, "Allow"), arn_for("/v1/fine_tuning/jobs/axb")) is True


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    path=st.text(st.characters(codec="utf-8"), max_size=40),
    method=st.sampled_from(sorted({r.method for r in ROUTES})),
)
def test_any_path_policy_matches_exactly_its_own_method_arn(path: str, method: str) -> None:
    arn = arn_for("/" + path, method)
    assert policy_allows(answer(arn, "Allow"), arn) is True
    assert policy_allows(answer(arn, "Deny"), arn) is False
    if "*" not in path and "?" not in path:
        assert policy_allows(answer(arn, "Allow"), arn + "x") is False
        assert policy_allows(answer(arn, "Allow"), arn[:-1]) is False


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"methodArn": None},
        {"methodArn": 7},
        {"methodArn": ""},
        {"methodArn": "arn:aws:lambda:us-east-1:123456789012:function:f"},
        {"methodArn": "not an arn:execute-api:"},
        {"methodArn": "arn:aws:execute-api:us-east-1"},
    ],
)
def test_a_malformed_method_arn_is_refused(raw: dict[str, Any]) -> None:
    with pytest.raises(policy.MalformedMethodArn):
        policy.method_arn(raw)


@pytest.mark.parametrize("ch", FINDING + WILDCARDS)
def test_path_characters_method_arn_is_taken_as_it_is(ch: str) -> None:
    arn = LocalGateway.method_arn(JOB, f"/v1/fine_tuning/jobs/a{ch}b")
    assert (
        arn
        == f"arn:aws:execute-api:us-east-1:123456789012:local/prod/GET/v1/fine_tuning/jobs/a{ch}b"
    )
    assert policy.method_arn({"methodArn": arn}) == arn


@pytest.mark.parametrize(
    ("pattern", "arn", "expected"),
    [
        ("*", arn_for("/v1/models"), True),
        ("arn:aws:execute-api:*", arn_for("/v1/models"), True),
        ("arn:aws:execute-api:*:*:abcdef1234/*/GET/*", arn_for("/v1/models"), True),
        ("arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/*", arn_for("/a:b"), True),
        (
            "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/*/GET/a/*/c",
            arn_for("/a/x:y/c"),
            True,
        ),
        ("arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/GET/a?", arn_for("/ab"), True),
        (
            "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/GET/a?",
            arn_for("/abc"),
            False,
        ),
        ("arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/GET/A", arn_for("/a"), False),
        ("arn:aws:execute-api:us-*-1:123456789012:abcdef1234/prod/GET/a", arn_for("/a"), True),
        ("arn:aws:execute-api:us-?ast-1:123456789012:abcdef1234/prod/GET/a", arn_for("/a"), True),
        ("arn:aws:execute-api:u*1:123456789012:abcdef1234/prod/GET/a", arn_for("/a"), True),
        ("arn:aws:execute-api:us-east-1:1*2:abcdef1234/prod/GET/a", arn_for("/a"), True),
        (
            "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/GET/a",
            arn_for("/a\n"),
            False,
        ),
        (
            "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/GET/a.",
            arn_for("/ab"),
            False,
        ),
        ("arn:aws:execute-api:us-east-1", arn_for("/a"), False),
        ("arn:aws:execute-api:us*2:abcdef1234/prod/GET/a", arn_for("/a"), False),
    ],
)
def test_resource_matching_follows_iam(pattern: str, arn: str, expected: bool) -> None:
    assert _arn_matches(pattern, arn) is expected
