"""Names and addresses of the gate's items: the only module that spells them.

Attribute names are short on purpose: every request writes a key item and a counter shard,
and DynamoDB bills a write by the item's size (1 write unit per KB).

Key item (``pk = k#<key_id>`` or ``k#<parent_id>`` for a delegated key, see :func:`key_address`):

====== =================================================================================
``s``  status: ``active`` | ``suspended`` | ``revoked``
``ps`` a delegated key's parent status as last cascaded (absent on root keys)
``w``  the UTC minute (epoch seconds // 60) that ``c`` counts in
``c``  requests admitted in minute ``w``
``n``  serial of the key's current secret; serial ``n - 1`` stays valid while ``g`` > now
``g``  epoch seconds until which the previous secret (serial ``n - 1``) is still accepted
``b``  token budget (delegated keys only, optional); ``u`` tokens used or reserved against it
``sb`` spend budget in micro-dollars (delegated keys only, optional); ``su`` micro-dollars
       spent or reserved against it (docs/billing.md, "Spend budgets")
``tn`` the tenant id (for operators reading the table); ``x`` expiry (epoch seconds), if any
``ac`` the networks the key may be used from: a list of normalised CIDR strings, at most
       16 (absent: any source; ``functions/gate/sources.py``). Returned by the key write,
       so checking it costs no round trip
``kr`` the key's own requests per minute, overriding the shard's ``rpm`` (higher or lower;
       absent: the plan's)
====== =================================================================================

Counter shard (``pk = t#<tenant>#<environment>#<index>``, ``sk = s``):

====== =================================================================================
``st`` the tenant's status; ``sc`` the plan's scopes; ``pl`` the plan's name
``rpm`` per-key requests per minute (absent: unlimited)
``mo`` the UTC month (``YYYY-MM``) the counters count in; ``rq`` requests; ``tk`` tokens
       used or reserved
``rl`` / ``tl`` the tenant's monthly request / token limit for this environment (absent:
       unlimited); ``ra`` / ``ta`` this shard's allocation of them in month ``mo``
``sp`` micro-dollars spent or reserved in month ``mo`` (live shards only: test keys never
       count against spend)
``sl`` the tenant's monthly live spend limit in micro-dollars (absent: unlimited); ``sa``
       this shard's allocation of it in month ``mo`` (borrowable like ``ta``)
``ns`` how many shards the tenant's environment has; ``ix`` this shard's index
====== =================================================================================

Reservation marker (``pk = r#<UTC minute of the reservation>#<bucket>``, ``sk = <request
id>``, bucket = CRC-32 of the request id mod :data:`MARKER_BUCKETS`; written by the Api after
a non-zero reservation and deleted by its settle, so only a killed function leaves one:
``functions/gate/reservations.py``). Its own attribute names, so that no reader of key items
or shards mistakes it for one:

====== =================================================================================
``rt`` tenant; ``re`` environment; ``rs`` the shard reserved on; ``rk`` key id; ``rp`` the
       parent key id (delegated keys); ``rb`` 1 if the key item's budget was reserved on too
``rn`` tokens reserved; ``rm`` the month (``YYYY-MM``) they were counted in
``rv`` micro-dollars of spend reserved; ``rx`` 1 if the key item's spend budget was
       reserved on too
``ev`` the usage event to write if the request has none: attribution and the upper bound
====== =================================================================================

Sweep cursor (``pk = r#sweep``, ``sk = c``): ``rw`` the last minute whose markers were all
settled.

Token exchange items (``POST /v1/auth/token``, functions/trust/exchange.py), each with
``ttl`` (epoch seconds; DynamoDB's TTL deletes it later, nothing reads it as a limit):

* replay marker ``pk = xj#<SHA-256 of issuer and jti (or of the token)>``, ``sk = j``: ``xn``
  how many times that token was exchanged (at most the policy's ``max_uses``); ``ttl`` the
  token's expiry plus the clock skew allowed;
* exchange counter ``pk = xr#<SHA-256 of issuer and subject>#<UTC minute>``, ``sk = m``:
  ``xc`` exchanges in that minute (at most the policy's ``exchanges_per_minute``).
"""

from __future__ import annotations

import time
import zlib
from datetime import UTC, datetime
from typing import Final

# -- key item --------------------------------------------------------------------------
STATUS: Final = "s"
PARENT_STATUS: Final = "ps"
WINDOW: Final = "w"
COUNT: Final = "c"
SERIAL: Final = "n"
GRACE: Final = "g"
BUDGET: Final = "b"
USED: Final = "u"
TENANT: Final = "tn"
EXPIRES: Final = "x"
ALLOW_CIDRS: Final = "ac"  # keyattrs
KEY_RPM: Final = "kr"  # keyattrs
SPEND_BUDGET: Final = "sb"
SPENT: Final = "su"

# -- counter shard ---------------------------------------------------------------------
TENANT_STATUS: Final = "st"
SCOPES: Final = "sc"
PLAN: Final = "pl"
RPM: Final = "rpm"
MONTH: Final = "mo"
REQUESTS: Final = "rq"
TOKENS: Final = "tk"
REQUEST_LIMIT: Final = "rl"
TOKEN_LIMIT: Final = "tl"  # noqa: S105 - an attribute name
REQUEST_ALLOC: Final = "ra"
TOKEN_ALLOC: Final = "ta"  # noqa: S105 - an attribute name
SPEND: Final = "sp"
SPEND_LIMIT: Final = "sl"
SPEND_ALLOC: Final = "sa"
SHARDS: Final = "ns"
INDEX: Final = "ix"

# -- reservation marker and sweep cursor -----------------------------------------------
MARKER_TENANT: Final = "rt"
MARKER_ENV: Final = "re"
MARKER_SHARD: Final = "rs"
MARKER_KEY: Final = "rk"
MARKER_PARENT: Final = "rp"
MARKER_KEY_BUDGETED: Final = "rb"
MARKER_AMOUNT: Final = "rn"
MARKER_MONTH: Final = "rm"
MARKER_SPEND: Final = "rv"
MARKER_KEY_SPEND_BUDGETED: Final = "rx"
MARKER_EVENT: Final = "ev"
CURSOR_MINUTE: Final = "rw"
MARKER_BUCKETS: Final = 16

# -- token exchange: replay markers and exchange counters ------------------------------
EXCHANGE_USES: Final = "xn"
EXCHANGE_COUNT: Final = "xc"
EXPIRES_AT: Final = "ttl"  # the table's TTL attribute

ACTIVE: Final = "active"
SUSPENDED: Final = "suspended"
REVOKED: Final = "revoked"
ENVIRONMENTS: Final = ("live", "test")
MAX_SHARDS: Final = 64

Address = dict[str, dict[str, str]]


def key_address(key_id: str, parent_key_id: str | None = None) -> Address:
    """Where a key's item lives. A delegated key sits in its parent's partition, so a
    cascade reads every child of a parent with one strongly consistent Query."""
    if parent_key_id:
        return {"pk": {"S": f"k#{parent_key_id}"}, "sk": {"S": f"c#{key_id}"}}
    return {"pk": {"S": f"k#{key_id}"}, "sk": {"S": "k"}}


def children_partition(parent_key_id: str) -> str:
    return f"k#{parent_key_id}"


def shard_address(tenant_id: str, environment: str, index: int) -> Address:
    return {"pk": {"S": f"t#{tenant_id}#{environment}#{index}"}, "sk": {"S": "s"}}


def marker_partition(minute: int, bucket: int) -> str:
    return f"r#{minute}#{bucket}"


def marker_address(request_id: str, minute: int) -> Address:
    """Where a reservation's marker lives: its minute and one of :data:`MARKER_BUCKETS`
    partitions (spread writes; a sweep reads a minute with that many Queries)."""
    bucket = zlib.crc32(request_id.encode("utf-8")) % MARKER_BUCKETS
    return {"pk": {"S": marker_partition(minute, bucket)}, "sk": {"S": request_id}}


def is_marker(pk: str) -> bool:
    return pk.startswith("r#")


CURSOR_ADDRESS: Final[Address] = {"pk": {"S": "r#sweep"}, "sk": {"S": "c"}}


def replay_address(token_digest: str) -> Address:
    """Where one exchanged token's use count lives (``token_digest``: hex SHA-256)."""
    return {"pk": {"S": f"xj#{token_digest}"}, "sk": {"S": "j"}}


def exchange_counter_address(subject_digest: str, minute: int) -> Address:
    """Where one issuer/subject's exchanges in one UTC minute are counted."""
    return {"pk": {"S": f"xr#{subject_digest}#{minute}"}, "sk": {"S": "m"}}


def share(limit: int, shards: int, index: int) -> int:
    """Shard ``index``'s base allocation of ``limit``: the shares add up to ``limit``."""
    return limit // shards + (1 if index < limit % shards else 0)


def minute_window(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // 60)


def month_window(now: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if now is None else now, UTC).strftime("%Y-%m")


def seconds_to_next_minute(now: float) -> int:
    return max(1, 60 - int(now) % 60)


def seconds_to_next_month(now: float) -> int:
    t = datetime.fromtimestamp(now, UTC)
    nxt = datetime(t.year + (t.month == 12), t.month % 12 + 1, 1, tzinfo=UTC)
    return max(1, int(nxt.timestamp() - now))
