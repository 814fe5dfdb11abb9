"""Threshold notices: ``usage.threshold`` webhooks at 50/80/100 % of a tenant's monthly live
limits, exactly once each, signed, delivered with retries, dead letters visible in the CLI.

* :mod:`thresholds` -- which (metric, threshold) a month's totals have reached (pure);
* :mod:`emitter` -- called by the usage aggregator with a tenant's month total after each
  write: one conditional put per newly reached threshold decides, once, that it is emitted;
* :mod:`store` -- the notices table (webhook registrations, notices and their delivery state);
* :mod:`signing`, :mod:`urls` -- the signature header and webhook URL rules;
* :mod:`delivery`, :mod:`handler` -- the delivery function on the notices table's stream.

docs/billing.md ("Threshold notices") is the contract; docs/usage-pipeline.md says where
detection sits in the pipeline.
"""
