"""Which billing customer a tenant is, at each destination (``tollgate billing map``).

Stripe: a customer id (``cus_...``). AWS Marketplace: the buyer's AWS account id and the
ARN of its licence (``CustomerAWSAccountId`` + ``LicenseArn``: what ``BatchMeterUsage``
requires of SaaS products listed since June 2026, instead of ``CustomerIdentifier`` /
``ProductCode``; the pattern below is botocore's model of the field).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Final

from functions.billing.logic import MARKETPLACE, STRIPE, BillingInputError

CUSTOMER_SK: Final = "customer"
STRIPE_CUSTOMER: Final = re.compile(r"cus_[A-Za-z0-9]{1,250}")
AWS_ACCOUNT: Final = re.compile(r"[0-9]{12}")
# botocore meteringmarketplace LicenseArn pattern, narrowed to License Manager licences.
LICENSE_ARN: Final = re.compile(
    r"arn:aws[a-zA-Z-]*:license-manager:[A-Za-z0-9_/.-]{0,63}:[A-Za-z0-9_/.-]{0,63}:"
    r"license[:/][A-Za-z0-9][A-Za-z0-9:_/+=,@.-]{0,1000}"
)


@dataclass(frozen=True)
class Customer:
    tenant_id: str
    stripe_customer_id: str | None = None
    marketplace_account_id: str | None = None
    marketplace_license_arn: str | None = None
    updated_at: str | None = None

    def mapped_to(self, destination: str) -> bool:
        if destination == STRIPE:
            return self.stripe_customer_id is not None
        if destination == MARKETPLACE:
            return self.marketplace_account_id is not None
        return False

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "stripe_customer_id": self.stripe_customer_id,
            "marketplace_customer_account_id": self.marketplace_account_id,
            "marketplace_license_arn": self.marketplace_license_arn,
            "updated_at": self.updated_at,
        }


def validate(
    stripe_customer: str | None,
    marketplace_account: str | None,
    marketplace_license: str | None,
) -> None:
    """Raise :class:`BillingInputError` for anything a destination would refuse."""
    if stripe_customer is None and marketplace_account is None and marketplace_license is None:
        raise BillingInputError(
            "give --stripe-customer cus_... and/or --marketplace-customer-account ACCOUNT_ID "
            "--marketplace-license-arn ARN"
        )
    if stripe_customer is not None and not STRIPE_CUSTOMER.fullmatch(stripe_customer):
        raise BillingInputError("--stripe-customer must be a Stripe customer id, cus_...")
    if (marketplace_account is None) != (marketplace_license is None):
        raise BillingInputError(
            "--marketplace-customer-account and --marketplace-license-arn go together"
        )
    if marketplace_account is not None and not AWS_ACCOUNT.fullmatch(marketplace_account):
        raise BillingInputError("--marketplace-customer-account must be a 12-digit AWS account id")
    if marketplace_license is not None and not LICENSE_ARN.fullmatch(marketplace_license):
        raise BillingInputError(
            "--marketplace-license-arn must be a License Manager licence ARN "
            "(arn:aws:license-manager::ACCOUNT:license:l-...)"
        )


def _of(item: Any) -> Customer:
    return Customer(
        tenant_id=item.tenant_id,
        stripe_customer_id=item.stripe_customer_id,
        marketplace_account_id=item.marketplace_account_id,
        marketplace_license_arn=item.marketplace_license_arn,
        updated_at=item.updated_at,
    )


def put(
    tenant_id: str,
    stripe_customer: str | None = None,
    marketplace_account: str | None = None,
    marketplace_license: str | None = None,
) -> Customer:
    """Set (or change) the tenant's customers; a destination not given keeps its mapping."""
    from functions.common.models import BillingItem

    validate(stripe_customer, marketplace_account, marketplace_license)
    try:
        item = BillingItem.get(tenant_id, CUSTOMER_SK, consistent_read=True)
    except BillingItem.DoesNotExist:
        item = BillingItem(tenant_id, CUSTOMER_SK)
    if stripe_customer is not None:
        item.stripe_customer_id = stripe_customer
    if marketplace_account is not None:
        item.marketplace_account_id = marketplace_account
        item.marketplace_license_arn = marketplace_license
    item.updated_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    item.save()  # conditional on the version read (VersionAttribute)
    return _of(item)


def get(tenant_id: str) -> Customer | None:
    from functions.common.models import BillingItem

    try:
        return _of(BillingItem.get(tenant_id, CUSTOMER_SK, consistent_read=True))
    except BillingItem.DoesNotExist:
        return None


def all_customers() -> list[Customer]:
    """Every tenant's mapping (one Scan: the table holds one such item per tenant)."""
    from functions.common.models import BillingItem

    found = BillingItem.scan(BillingItem.sk == CUSTOMER_SK, consistent_read=True)
    return sorted((_of(i) for i in found), key=lambda c: c.tenant_id)
