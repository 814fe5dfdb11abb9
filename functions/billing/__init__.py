"""Billing export (issue 14 item 5): each tenant's billable usage, per hour, to Stripe Billing
meter events or AWS Marketplace ``BatchMeterUsage``, exactly once, with a ledger that
``tollgate billing reconcile`` compares with the statements (docs/billing.md)."""
