"""Responders: revocation (one key, a leaked secret, a tenant, a principal), the exposure
report, and Tollgate's events on its EventBridge bus. Used by the revoke function, the leak
webhook, the spike detector and the CLI."""
