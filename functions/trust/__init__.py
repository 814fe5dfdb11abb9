"""The OIDC token exchange (``POST /v1/auth/token``, RFC 8693): an external identity's token
for a short-lived Tollgate key, as a trust policy allows (functions/keys/trust.py).

Its own Lambda function, so the JOSE library never loads into the authorizer's or the Api's
cold start: ``config`` (settings), ``jwks`` (discovery and keys, cached per container),
``verify`` (the JWT checks), ``exchange`` (policy, rate limit, replay bound, issue) and
``handler`` (the form in, the OAuth answer out).
"""
