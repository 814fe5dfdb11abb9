"""The gate: every piece of state the authorizer enforces, and the one package that owns it.

Where the state lives (one ``gate`` table; ``items`` holds every name and address):

* a **key item** per key (``pk = k#<key_id>``, ``sk = k``; a delegated key lives in its
  parent's partition, ``pk = k#<parent_id>``, ``sk = c#<key_id>``): status, the parent's
  status as last cascaded (``ps``), the per-minute window and count, the secret serial and
  rotation grace, a delegated key's token budget and use. Small and fixed in size.
* **counter shards** per tenant and environment (``pk = t#<tenant>#<live|test>#<i>``,
  ``sk = s``): a copy of the tenant's status, plan scopes and per-key minute limit, the
  monthly window, the requests and tokens counted in it, and this shard's *allocation* of the
  tenant's monthly limits (the allocations of a tenant's shards add up to its limit).

An authorization is two conditional writes, key item first (a revoked, suspended or
rate-limited key costs one write and touches nothing shared), then one shard of the tenant's
environment (``admission``). Neither item grows with the number of keys, events or periods a
tenant has: the cost of a request is constant (docs/architecture.md, "The gate").
"""
