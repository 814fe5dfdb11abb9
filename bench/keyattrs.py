"""Keys bound to networks, tagged, with their own per-minute limit (issue 15 items 2, 3): what
the authorizer pays for them, measured against a plain key of the same tenant in the same run.

* DynamoDB round trips per authorizer decision (the embedded moto server's count of every
  request it served, ``tollgate/local/meter.py``), with and without a CIDR list: the list
  rides on the key write the authorizer already makes, so the target is 0 more;
* the refusal path: a source outside the list on a cold container (the key write, then the
  give-back of its count: 1 more write, on that path only) and on a warm one (0 calls);
* the largest key item these options make (16 of the longest IPv6 CIDRs, a per-key limit, a
  delegated key's budget, in its parent's partition), sized by DynamoDB's item-size rules
  (``tollgate/local/capacity.py``): at most 1 KB, one write unit per request;
* write units per authorization, largest key vs plain key;
* the authorizer's latency, a key with the largest list vs the same without a list (paired,
  alternating, so load on the machine falls on both alike) as a ratio. Against moto the
  difference is mostly the larger key item coming back over HTTP (~700 bytes more).
"""

from __future__ import annotations

import statistics
import uuid
from typing import Any

from bench.common import Section, paired

API = "arn:aws:execute-api:us-east-1:123456789012:bench/prod"
N = 40
LATENCY_ROUNDS = 300
# 16 IPv6 /128s whose compressed form is the longest a CIDR can be (43 characters).
LONGEST = [f"2001:db8:1111:2222:3333:4444:5555:{0x6600 + i:x}/128" for i in range(16)]
ALLOWED_SOURCE = "2001:db8:1111:2222:3333:4444:5555:6605"


def _event(secret: str, source: str) -> dict[str, Any]:
    return {
        "type": "REQUEST",
        "methodArn": f"{API}/POST/v1/chat/completions",
        "resource": "/v1/chat/completions",
        "path": "/v1/chat/completions",
        "httpMethod": "POST",
        "headers": {"Authorization": f"Bearer {secret}"},
        "multiValueHeaders": {"Authorization": [f"Bearer {secret}"]},
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "stage": "prod",
            "identity": {"sourceIp": source},
        },
    }


class _Ctx:
    function_name = "bench"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench"


def run(server: Any = None) -> Section:
    from functions.authorizer import handler
    from functions.keys.service import KeyService
    from tollgate.local.capacity import item_size

    sec = Section("keyattrs")
    if server is None:
        sec.add("skipped", "no moto server handed to the section", ok=None)
        return sec
    svc = KeyService()
    name = f"ka{uuid.uuid4().hex[:8]}"
    svc.create_plan(name, requests_per_minute=10**7, requests_per_month=10**9,
                    tokens_per_month=10**12, actor="bench")  # fmt: skip
    svc.create_tenant(name, plan=name, actor="bench")
    plain = svc.create_key(name, actor="bench")
    tags = {f"k{i}-" + "x" * 29: "v" * 128 for i in range(8)}
    parent = svc.create_key(name, allow_cidrs=["2001:db8::/32"], tags=tags, actor="bench")
    largest = svc.delegate_key(parent["key_id"], principal="agent", allow_cidrs=LONGEST,
                               token_budget=10**12, actor="bench")  # fmt: skip
    svc.set_limit(largest["key_id"], requests_per_minute=10**7, actor="bench")
    bound = svc.create_key(name, allow_cidrs=LONGEST, actor="bench")  # a plain key + a list
    one = svc.create_key(name, allow_cidrs=["2001:db8::/32"], actor="bench")

    def decide(secret: str, source: str) -> dict[str, Any]:
        out: dict[str, Any] = handler.handler(_event(secret, source), _Ctx())
        return out

    def metered(secret: str, source: str, n: int = N) -> Any:
        with server.metered() as m:
            for _ in range(n):
                decide(secret, source)
        return m

    for secret in (plain["secret"], largest["secret"], bound["secret"], one["secret"]):
        for _ in range(3):
            assert decide(secret, ALLOWED_SOURCE)["context"]["verdict"] == "allow"
    without = metered(plain["secret"], ALLOWED_SOURCE)
    with_list = metered(bound["secret"], ALLOWED_SOURCE)
    largest_m = metered(largest["secret"], ALLOWED_SOURCE)
    trips_without, trips_with = without.requests / N, with_list.requests / N
    sec.add(
        "DynamoDB round trips per authorizer decision, with a 16-CIDR list / without",
        f"{trips_with:g} / {trips_without:g}",
        baseline=f"without a list: {trips_without:g} (same run)",
        target="0 more (the list comes back with the key write)",
        ok=trips_with == trips_without,
        note="every request the moto server served (tollgate/local/meter.py)",
    )
    # a container that has the key's facts but has not seen its networks yet
    handler.store()._cidrs.clear()
    cold = metered(bound["secret"], "192.0.2.1", n=1)
    warm = metered(bound["secret"], "192.0.2.1")
    sec.add(
        "DynamoDB calls per refusal for the source (source_not_allowed), "
        "first in a container / after",
        f"{cold.requests} / {warm.requests / N:g}",
        target="the key write + its give-back, then 0; never the shard",
        ok=cold.requests <= 2
        and warm.requests == 0
        and all(w.key["pk"]["S"].startswith("k#") for w in cold.writes),
        note=", ".join(f"{op} {n}" for op, n in sorted(cold.round_trips.items())),
    )
    key_items = [w for w in largest_m.writes if w.key["pk"]["S"].startswith("k#")]
    biggest = max(item_size(w.after) for w in key_items if w.after is not None)
    plain_items = [w for w in without.writes if w.key["pk"]["S"].startswith("k#")]
    plain_size = max(item_size(w.after) for w in plain_items if w.after is not None)
    sec.add(
        "largest key item (16 longest IPv6 CIDRs, own limit, delegated budget)",
        biggest,
        unit="bytes",
        baseline=f"plain key item {plain_size} bytes",
        target="<= 1024 (one write unit)",
        ok=biggest <= 1024,
        note="DynamoDB's item-size rules (tollgate/local/capacity.py); 8 maximal tags live "
        "on the Secret, not here",
    )
    sec.add(
        "write units per authorization, largest key / plain key",
        f"{largest_m.write_units_total / N:g} / {without.write_units_total / N:g}",
        target="equal",
        ok=largest_m.write_units_total == without.write_units_total,
    )
    for label, key, target in (("1 CIDR", one, 1.1), ("16 CIDRs", bound, 1.25)):
        t_with, t_without = paired(
            lambda k=key: decide(k["secret"], ALLOWED_SOURCE),
            lambda: decide(plain["secret"], ALLOWED_SOURCE),
            LATENCY_ROUNDS,
        )
        ratio = statistics.median(t_with) / statistics.median(t_without)
        sec.add(
            f"authorizer latency with a {label} list / without (p50, paired, same run)",
            round(ratio, 2),
            unit="x",
            baseline=f"{statistics.median(t_without):.2f} ms without, "
            f"{statistics.median(t_with):.2f} ms with",
            target=f"<= {target}",
            ok=ratio <= target,
            note="the check itself is integer comparisons (functions/gate/sources.py); "
            "the rest is moto returning a larger key item",
        )
    return sec
