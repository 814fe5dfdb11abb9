"""cdk-nag (3.x): the AwsSolutions pack as a CDK validation plugin, and acknowledgements.

Each acknowledgement sits next to the resource it is about and carries the reason a
security reviewer reads. IAM4/IAM5 findings are acknowledged by their exact finding id
(``AwsSolutions-IAM5[Resource::...]``), never by rule.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

PLUGIN = "AwsSolutions"


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding on ``scope`` (and below), e.g. ``AwsSolutions-L1`` or
    ``AwsSolutions-IAM5[Resource::...]``, under the id the plugin reports it by."""
    Validations.of(scope).acknowledge(Acknowledgment(id=f"{PLUGIN}::{rule_id}", reason=reason))


def add_checks(scope: IConstruct) -> None:
    """Run AwsSolutions on every stack of ``scope`` (an App or Stage) at synth."""
    Validations.of(scope).add_plugins(AwsSolutionsChecks(scope))
