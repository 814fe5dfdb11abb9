"""``tollgate billing``: map tenants to billing customers, export billable usage to Stripe or
AWS Marketplace exactly once, and reconcile what was exported with the statements.

The logic is functions/billing/ (the scheduled function runs the same export); this module
parses options, finds the Stripe key and the Marketplace client, and prints.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

from functions.billing import config
from functions.billing import customers as customer_store
from functions.billing.export import run as run_export
from functions.billing.logic import STRIPE, BillingInputError, check_destination, check_month
from functions.billing.reconcile import reconcile as run_reconcile
from functions.billing.sinks import MarketplaceSink, Sink, StripeSink
from tollgate.cli import render
from tollgate.cli.context import (
    BadInput,
    State,
    connect,
    current_month,
    emit,
    service,
    split_csv,
)

app = typer.Typer(
    help="Billing export: tenants' customers, export to Stripe / AWS Marketplace, reconcile.",
    no_args_is_help=True,
)


@app.command("map")
def map_customer(
    ctx: typer.Context,
    tenant: str = typer.Argument(..., metavar="TENANT_ID"),
    stripe_customer: str | None = typer.Option(None, "--stripe-customer", metavar="cus_..."),
    account: str | None = typer.Option(
        None, "--marketplace-customer-account", metavar="ACCOUNT_ID"
    ),
    licence: str | None = typer.Option(None, "--marketplace-license-arn", metavar="ARN"),
) -> None:
    """Map a tenant to its Stripe customer and/or AWS Marketplace customer (account id +
    licence ARN). A destination not given keeps its current mapping."""
    try:
        customer_store.validate(stripe_customer, account, licence)
    except BillingInputError as exc:
        raise BadInput(str(exc)) from None
    service(ctx).get_tenant(tenant)  # unknown tenant: exit 2
    customer = customer_store.put(tenant, stripe_customer, account, licence)
    emit(ctx, customer.as_dict(), lambda c, d: render.record(c, d, title="Billing customer"))


CUSTOMER_COLUMNS = (
    ("tenant_id", "tenant"),
    ("stripe_customer_id", "Stripe customer"),
    ("marketplace_customer_account_id", "Marketplace account"),
    ("marketplace_license_arn", "licence ARN"),
)


@app.command("customers")
def list_customers(ctx: typer.Context) -> None:
    """Every tenant's billing customers."""
    connect(ctx)
    rows = [c.as_dict() for c in customer_store.all_customers()]
    emit(ctx, rows, lambda c, d: render.table(c, d, CUSTOMER_COLUMNS))


def _stripe_key(st: State, option: str | None) -> str:
    if option == "-":
        option = sys.stdin.readline().strip()
    if option:
        key = option
    elif st.stack and st.stack_outputs.get("StripeSecretArn"):
        env = {config.ENV_STRIPE_SECRET_ARN: st.stack_outputs["StripeSecretArn"]}
        try:
            key = config.stripe_api_key(env)
        except config.StripeKeyMissing as exc:
            raise BadInput(str(exc)) from None
    else:
        key = os.environ.get(config.ENV_STRIPE_API_KEY, "").strip()
    if not key:
        raise BadInput(
            f"no Stripe key: set {config.ENV_STRIPE_API_KEY}, or --stripe-api-key - (stdin)"
        )
    if not key.startswith(("sk_", "rk_")):
        raise BadInput("the Stripe key must be a secret or restricted key (sk_... or rk_...)")
    return key


def _sink(st: State, to: str, key_option: str | None, api_base: str | None) -> Sink:
    if to == STRIPE:
        base = api_base or os.environ.get(config.ENV_STRIPE_API_BASE) or None
        if base is not None and not base.startswith(("http://127.0.0.1", "https://")):
            raise BadInput("--stripe-api-base must be https://... (or the local fake on 127.0.0.1)")
        return StripeSink(_stripe_key(st, key_option), base)
    product = os.environ.get(config.ENV_PRODUCT_CODE) or None
    if st.local:
        # make local has no Marketplace: the in-process model of its rules stands in
        # (tollgate/local/marketplace_fake.py); the ledger still keeps reruns at 0 records.
        import boto3

        from tollgate.local.marketplace_fake import MarketplaceFake

        client = boto3.client("meteringmarketplace", region_name="us-east-1")
        return MarketplaceSink(MarketplaceFake().attach(client), product_code=product)
    return MarketplaceSink(product_code=product)


@app.command("export")
def export(
    ctx: typer.Context,
    to: str = typer.Option(..., "--to", metavar="stripe|aws-marketplace"),
    period: str | None = typer.Option(
        None, "--period", metavar="YYYY-MM", help="Default: the current UTC month."
    ),
    tenant: str | None = typer.Option(
        None, "--tenant", metavar="TENANT_ID,...", help="Only these tenants."
    ),
    stripe_api_key: str | None = typer.Option(
        None,
        "--stripe-api-key",
        metavar="-",
        help=f"'-': read the key from stdin. Default: {config.ENV_STRIPE_API_KEY}, or the "
        "stack's secret with --stack.",
    ),
    stripe_api_base: str | None = typer.Option(
        None, "--stripe-api-base", metavar="URL", help="e.g. the local Stripe fake."
    ),
) -> None:
    """Push every mapped tenant's billable usage of the month's closed hours; exit 1 if
    meters are left pending or were rejected (a rerun sends only what is missing)."""
    period = period or current_month()
    try:
        check_destination(to)
        check_month(period)
    except BillingInputError as exc:
        raise BadInput(str(exc)) from None
    st = connect(ctx)
    only = split_csv(tenant)
    for t in only or ():
        service(ctx).get_tenant(t)  # unknown tenant: exit 2
    sink = _sink(st, to, stripe_api_key, stripe_api_base)
    report = run_export(to, period, sink, tenants=only or None).as_dict()
    emit(ctx, report, _show_export)
    if not report["ok"]:
        sys.stderr.write(
            f"error: {report['pending']} meter(s) pending, {report['rejected']} rejected, "
            f"{report['stale']} stale, {len(report['failed'])} tenant(s) failed; "
            "run again to retry\n"
        )
        raise typer.Exit(1)


@app.command("reconcile")
def reconcile(
    ctx: typer.Context,
    to: str = typer.Option(..., "--to", metavar="stripe|aws-marketplace"),
    period: str | None = typer.Option(
        None, "--period", metavar="YYYY-MM", help="Default: the current UTC month."
    ),
) -> None:
    """Exported totals against statement totals per tenant; exit 1 unless drift is 0."""
    period = period or current_month()
    try:
        check_destination(to)
        check_month(period)
    except BillingInputError as exc:
        raise BadInput(str(exc)) from None
    connect(ctx)
    data = run_reconcile(to, period)
    emit(ctx, data, _show_reconcile)
    if not data["ok"]:
        sys.stderr.write(f"error: billing drift {data['drift']} for {to} {period}\n")
        raise typer.Exit(1)


def _show_export(console: Console, data: dict[str, Any]) -> None:
    console.print(
        Text(
            f"Export {data['period']} to {data['destination']}: {data['sent']} sent, "
            f"{data['duplicates']} already there, {data['pending']} pending, "
            f"{data['rejected']} rejected, {data['late']} late",
            style="bold",
        )
    )
    render.table(
        console,
        data["tenants"],
        [("tenant_id", "tenant"), ("sent", "sent"), ("duplicates", "dup"),
         ("pending", "pending"), ("rejected", "rejected"), ("quantities", "quantities"),
         ("errors", "errors")],
    )  # fmt: skip
    if data["unmapped"]:
        console.print(Text(f"not mapped: {', '.join(data['unmapped'])}", style="dim"))


def _show_reconcile(console: Console, data: dict[str, Any]) -> None:
    if not data["compared"]:
        console.print(Text(f"no tenant is mapped to {data['destination']}", style="dim"))
        return
    rows = [{**r, "statement": r["statement"], "exported": r["exported"]} for r in data["tenants"]]
    render.table(
        console,
        rows,
        [("tenant_id", "tenant"), ("statement", "statement"), ("exported", "exported"),
         ("not_yet_due", "not yet due"), ("pending", "pending"), ("drift", "drift")],
    )  # fmt: skip
    console.print(Text(f"drift {data['drift']}", style="bold"))
