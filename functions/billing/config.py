"""The billing export's configuration: every environment variable it reads, in one place.

CDK sets (infra/billing.py), besides the table variables of functions.common.config:

* ``TOLLGATE_BILLING_DESTINATIONS``: ``stripe``, ``aws-marketplace`` or both, comma-separated
  (the ``billing_destinations`` context of the stack);
* ``TOLLGATE_STRIPE_SECRET_ARN``: the Secrets Manager secret holding the Stripe secret key
  (read at run time, kept in memory, never logged).

Locally (the CLI, tests, ``make local``): ``TOLLGATE_STRIPE_API_KEY`` holds the key itself
and ``TOLLGATE_STRIPE_API_BASE`` may point the SDK at the local Stripe fake
(tollgate/local/stripe_fake.py). ``TOLLGATE_MARKETPLACE_PRODUCT_CODE`` is sent only if set
(products identified by licence ARN need none).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

from functions.billing.logic import check_destination

ENV_DESTINATIONS: Final = "TOLLGATE_BILLING_DESTINATIONS"
ENV_STRIPE_SECRET_ARN: Final = "TOLLGATE_STRIPE_SECRET_ARN"  # noqa: S105 - a variable name
ENV_STRIPE_API_KEY: Final = "TOLLGATE_STRIPE_API_KEY"
ENV_STRIPE_API_BASE: Final = "TOLLGATE_STRIPE_API_BASE"
ENV_PRODUCT_CODE: Final = "TOLLGATE_MARKETPLACE_PRODUCT_CODE"


class StripeKeyMissing(ValueError):
    """No Stripe secret key where one was looked for (the message never holds a key)."""


def destinations(environ: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if environ is None else environ
    raw = env.get(ENV_DESTINATIONS, "")
    return [check_destination(d.strip()) for d in raw.split(",") if d.strip()]


_secret_cache: dict[str, str] = {}


def stripe_api_key(environ: Mapping[str, str] | None = None, client: object = None) -> str:
    """The Stripe key: from Secrets Manager when a secret ARN is configured (AWS), else
    from ``TOLLGATE_STRIPE_API_KEY``. Cached per secret for the life of the process."""
    env = os.environ if environ is None else environ
    arn = env.get(ENV_STRIPE_SECRET_ARN, "").strip()
    if arn:
        if arn not in _secret_cache:
            if client is None:
                import boto3

                client = boto3.client("secretsmanager")
            value = client.get_secret_value(SecretId=arn).get("SecretString") or ""  # type: ignore[attr-defined]
            if not value.strip():
                raise StripeKeyMissing("the Stripe secret is empty: put the key into it")
            _secret_cache[arn] = value.strip()
        return _secret_cache[arn]
    key = env.get(ENV_STRIPE_API_KEY, "").strip()
    if not key:
        raise StripeKeyMissing(f"no Stripe key: set {ENV_STRIPE_API_KEY}")
    return key


def forget_stripe_key() -> None:
    """Drop the cached key (Stripe refused it: a rotated key is read on the next run)."""
    _secret_cache.clear()
