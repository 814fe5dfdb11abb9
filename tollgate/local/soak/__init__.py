"""``make soak``: the whole local stack under load and faults, then every invariant checked.

What it does (docs/soak.md has the detail and the figures of the last run):

1. starts the local stack in this process -- moto's server (with the fault middleware of
   :mod:`tollgate.local.faults`), the local API Gateway running the real authorizer and API
   handlers and the leak webhook, and the stream pollers feeding the real stream handlers
   (wrapped so that some invocations crash) -- plus a loopback server playing GitHub's
   secret-scanning key list;
2. seeds tenants whose plans have each limit (per-minute, per-month requests, monthly
   tokens, a delegated key's token budget) low enough to be reached, and keys of every
   kind: live, test, narrow scopes, delegated, expired, revoked, and malformed ones;
3. drives it for a bounded time with concurrent clients on loopback -- half the official
   OpenAI SDK, half plain HTTP -- over every route, with valid and invalid keys and bodies,
   while a share of DynamoDB calls fail (throttling, 500s, short outages) and stream
   handlers crash on some batches; mid-run it revokes a key (the revoke function), suspends
   another (the detector's action) and revokes a third through a signed GitHub leak report;
4. switches faults off, lets the pollers drain, and checks every invariant of docs/design.md
   from three independent records: what each client saw, what the gateway served (the
   authorizer's decision and the counter window its conditional update counted the
   request in), and what DynamoDB holds (counters, usage events, rollups, audit);
5. prints the table and exits 1 if any invariant failed (``--json PATH`` writes it too).

``python -m tollgate.local.soak --duration 60`` (``make soak``); ``--help`` for the knobs.
``bench/soak.py`` runs it (shorter) for the benchmark report; ``tests/e2e/test_soak.py`` for CI.

Modules: :mod:`.model` (configuration, plans, keys, records), :mod:`.harness` (the stack, the
clients, the mid-run actions), :mod:`.checks` (the invariants), :mod:`.cli` (the table).
"""

from __future__ import annotations

from tollgate.local.soak.model import Row, SoakConfig

__all__ = ["Row", "SoakConfig"]
