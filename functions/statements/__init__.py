"""Monthly statements: invoice-ready line items per tenant, from the month's rollups.

Layers: ``logic`` (a statement from line-item rollups and plan prices; CSV and JSON),
``service`` (reads rollups and plans), ``store`` (S3), ``handler`` (the monthly schedule).
"""
