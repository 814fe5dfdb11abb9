"""The data model: every DynamoDB item Tollgate stores, as pynamodb models.

Used by the functions, the CLI and the local stack alike; ``infra/`` derives each table's keys
and indexes from these classes (``TABLES`` below), so a key schema is written once.

The hot path (the authorizer) reads the ``Secret`` (by SHA-256 of the presented key: the
key's immutable facts -- key id, tenant, environment, scopes, principal, parent, expiry and the
secret's serial; cached in the function) and writes two small items of the ``gate`` table (a
key item and a counter shard of the tenant; ``functions/gate/``, docs/architecture.md).

``Key`` is the durable, listable record of a key. Admin operations write the gate first (the
enforcement point), then ``Key``, then the audit record; no transactions (moto deep-copies a
table per transaction, and a retry converges anyway).
"""

from __future__ import annotations

from typing import Any, Final

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    VersionAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from functions.common.config import TableNames

_NAMES = TableNames.from_env()

# Statuses of a key (as stored); "expired" is derived from expires_at when shown.
ACTIVE: Final = "active"
SUSPENDED: Final = "suspended"
REVOKED: Final = "revoked"
EXPIRED: Final = "expired"


class _Meta:
    billing_mode = "PAY_PER_REQUEST"


class Plan(Model):
    """A plan: limits, allowed scopes and models, prices, spike policy.

    ``None`` limits mean unlimited. Prices are integer micro-dollars per 1,000 tokens.
    """

    class Meta(_Meta):
        table_name = _NAMES.plans

    name = UnicodeAttribute(hash_key=True)
    requests_per_minute = NumberAttribute(null=True)
    requests_per_month = NumberAttribute(null=True)
    tokens_per_month = NumberAttribute(null=True)
    scopes = ListAttribute(of=UnicodeAttribute, default=list)
    models = ListAttribute(of=UnicodeAttribute, default=list)
    # Tools the plan entitles (POST /v1/tools/{name}/invoke); None (absent): every tool.
    tools = ListAttribute(of=UnicodeAttribute, null=True)
    price_prompt_micros_per_1k = NumberAttribute(default=0)
    price_completion_micros_per_1k = NumberAttribute(default=0)
    # -- pricing (issue 14): per-model overrides of this plan, model -> {prompt, completion,
    # cached_prompt?, reasoning?} in micro-dollars per 1M tokens (functions/pricing/catalogue.py).
    model_prices = MapAttribute[str, Any](null=True)
    # Test keys' own monthly limits (None: unlimited); they never count against the above.
    test_requests_per_month = NumberAttribute(null=True)
    test_tokens_per_month = NumberAttribute(null=True)
    # How many counter shards carry a tenant's monthly counters (docs/capacity.md).
    counter_shards = NumberAttribute(default=1)
    # A tenant's monthly live spend budget in micro-dollars (None: unlimited); test keys never
    # count against it (docs/billing.md, "Spend budgets").
    spend_per_month_micros = NumberAttribute(null=True)
    spike_policy = UnicodeAttribute(default="suspend")  # suspend | alert | off
    spike_factor = NumberAttribute(default=10)
    spike_floor_tpm = NumberAttribute(default=1000)
    created_at = UnicodeAttribute()


class TenantsByPlan(GlobalSecondaryIndex["Tenant"]):
    class Meta:
        index_name = "by_plan"
        projection = AllProjection()

    plan = UnicodeAttribute(hash_key=True)
    tenant_id = UnicodeAttribute(range_key=True)


class Tenant(Model):
    """A tenant: its plan and a copy of the plan's limits (for views; the gate enforces its
    own copies on the tenant's counter shards, ``functions/gate/``)."""

    class Meta(_Meta):
        table_name = _NAMES.tenants

    tenant_id = UnicodeAttribute(hash_key=True)
    plan = UnicodeAttribute()
    status = UnicodeAttribute(default=ACTIVE)
    created_at = UnicodeAttribute()
    lim_rpm = NumberAttribute(null=True)  # requests per key per UTC minute
    lim_rmo = NumberAttribute(null=True)  # live requests per tenant per UTC month
    lim_tmo = NumberAttribute(null=True)  # live tokens per tenant per UTC month
    lim_test_rmo = NumberAttribute(null=True)  # test-key requests per tenant per UTC month
    lim_test_tmo = NumberAttribute(null=True)  # test-key tokens per tenant per UTC month
    counter_shards = NumberAttribute(default=1)
    plan_scopes = ListAttribute(of=UnicodeAttribute, default=list)
    by_plan = TenantsByPlan()


class KeysByTenant(GlobalSecondaryIndex["Key"]):
    class Meta:
        index_name = "by_tenant"
        projection = AllProjection()

    tenant_id = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class Key(Model):
    """The durable record of a key. Never holds the secret or its hash."""

    class Meta(_Meta):
        table_name = _NAMES.keys

    key_id = UnicodeAttribute(hash_key=True)
    tenant_id = UnicodeAttribute()
    environment = UnicodeAttribute()
    principal = UnicodeAttribute()
    scopes = ListAttribute(of=UnicodeAttribute, default=list)
    status = UnicodeAttribute(default=ACTIVE)
    status_reason = UnicodeAttribute(null=True)
    parent_key_id = UnicodeAttribute(null=True)
    token_budget = NumberAttribute(null=True)
    spend_budget_micros = NumberAttribute(null=True)  # a delegated key's spend budget
    created_at = UnicodeAttribute()
    expires_at = NumberAttribute(null=True)  # epoch seconds
    rotated_at = UnicodeAttribute(null=True)
    secret_serial = NumberAttribute(default=1)
    # -- keyattrs (issue 15): networks, tags, per-key limit ------------------------------
    # Copies of what the gate's key item enforces (``ac`` / ``kr``, functions/gate/items.py):
    # the CIDRs a request must come from (None: anywhere) and the per-key override of the
    # plan's requests per minute (None: the plan's). ``tags`` are fixed at issue (also on
    # the Secret, whence the authorizer carries them into usage events).
    allow_cidrs = ListAttribute(of=UnicodeAttribute, null=True)
    tags = MapAttribute[str, Any](null=True)
    requests_per_minute = NumberAttribute(null=True)
    # -- end keyattrs ---------------------------------------------------------------------
    by_tenant = KeysByTenant()


class SecretsByKey(GlobalSecondaryIndex["Secret"]):
    class Meta:
        index_name = "by_key"
        projection = KeysOnlyProjection()

    key_id = UnicodeAttribute(hash_key=True)
    serial = NumberAttribute(range_key=True)


class Secret(Model):
    """A secret's hash and the immutable facts of its key (cacheable by the authorizer).

    A rotated-out secret keeps its item; whether it is still valid is decided on the tenant's
    gate entry (serial and grace), never here. ``ttl`` lets DynamoDB delete it later.
    """

    class Meta(_Meta):
        table_name = _NAMES.secrets

    secret_hash = UnicodeAttribute(hash_key=True)
    key_id = UnicodeAttribute()
    tenant_id = UnicodeAttribute()
    environment = UnicodeAttribute()
    principal = UnicodeAttribute()
    scopes = ListAttribute(of=UnicodeAttribute, default=list)
    parent_key_id = UnicodeAttribute(null=True)
    expires_at = NumberAttribute(null=True)
    serial = NumberAttribute()
    created_at = UnicodeAttribute()
    ttl = NumberAttribute(null=True)
    tags = MapAttribute[str, Any](null=True)  # keyattrs: the key's tags (immutable)
    by_key = SecretsByKey()


class AuditByKey(GlobalSecondaryIndex["AuditRecord"]):
    class Meta:
        index_name = "by_key"
        projection = AllProjection()

    key_id = UnicodeAttribute(hash_key=True)
    event_id = UnicodeAttribute(range_key=True)


class AuditRecord(Model):
    """Append-only audit trail of every key lifecycle event. Written with a condition that the
    item does not exist; no role may update or delete it."""

    class Meta(_Meta):
        table_name = _NAMES.audit

    tenant_id = UnicodeAttribute(hash_key=True)
    event_id = UnicodeAttribute(range_key=True)  # "<ISO time>#<random>": sorts by time
    at = UnicodeAttribute()
    action = UnicodeAttribute()
    key_id = UnicodeAttribute(default="-")
    actor = UnicodeAttribute()
    reason = UnicodeAttribute(default="")
    details = MapAttribute[str, Any](null=True)
    by_key = AuditByKey()


class UsageByTenant(GlobalSecondaryIndex["UsageEvent"]):
    class Meta:
        index_name = "by_tenant"
        projection = AllProjection()

    tenant_id = UnicodeAttribute(hash_key=True)
    ts = NumberAttribute(range_key=True)


class UsageByKey(GlobalSecondaryIndex["UsageEvent"]):
    class Meta:
        index_name = "by_key"
        projection = AllProjection()

    key_id = UnicodeAttribute(hash_key=True)
    ts = NumberAttribute(range_key=True)


class UsageEvent(Model):
    """One per admitted request, keyed by the API Gateway request id (idempotent writes).
    Never holds prompt or completion text."""

    class Meta(_Meta):
        table_name = _NAMES.usage

    request_id = UnicodeAttribute(hash_key=True)
    ts = NumberAttribute()  # epoch milliseconds
    tenant_id = UnicodeAttribute()
    key_id = UnicodeAttribute()
    principal = UnicodeAttribute()
    parent_key_id = UnicodeAttribute(null=True)
    environment = UnicodeAttribute()
    operation = UnicodeAttribute()
    model = UnicodeAttribute(default="-")
    prompt_tokens = NumberAttribute(default=0)
    completion_tokens = NumberAttribute(default=0)
    cost_micros = NumberAttribute(default=0)
    status = UnicodeAttribute(default="ok")  # ok | error
    error_class = UnicodeAttribute(null=True)
    latency_ms = NumberAttribute(default=0)
    source_ip = UnicodeAttribute(default="-")
    user_agent = UnicodeAttribute(default="-")
    delivery = UnicodeAttribute(null=True)  # unique per delivery: tells our retry from a dup
    plan = UnicodeAttribute(null=True)  # the tenant's plan when the request was served
    # True: the tokens are the reservation's upper bound, not the provider's own count (it
    # timed out, its stream was cut or unreadable: functions/api/chat.py). Absent: exact.
    estimated = BooleanAttribute(null=True)
    # -- pricing (issue 14): token details and the price the request was charged at, fixed
    # here at settle so that a later price change never rewrites it (functions/api/usage.py).
    cached_tokens = NumberAttribute(null=True)  # part of prompt_tokens (provider's cache)
    reasoning_tokens = NumberAttribute(null=True)  # part of completion_tokens
    price_prompt = NumberAttribute(null=True)  # micro-dollars per 1M tokens
    price_completion = NumberAttribute(null=True)
    price_cached_prompt = NumberAttribute(null=True)
    price_reasoning = NumberAttribute(null=True)
    price_source = UnicodeAttribute(null=True)  # plan-override|plan|operator|genai-prices|free
    # -- keyattrs: the key's tags ({k: v}, functions/common/tags.py; absent: none) --------
    tags = MapAttribute[str, Any](null=True)
    by_tenant = UsageByTenant()
    by_key = UsageByKey()


class Rollup(Model):
    """Aggregated usage: one item per tenant, period and dimension value.

    ``sk`` is ``<granularity>#<period>#<dimension>#<value>``, e.g. ``month#2026-11#key#key_x``
    (dimension ``all`` for the tenant's live total; the dimensions and which events each
    counts: functions/usage/logic.py). Each item also holds one top-level attribute per
    stream shard that added to it, ``mk:<shard id>`` = ``<sequence number, 40 digits>@<epoch
    s>``: the watermark that makes aggregation exactly once (functions/usage/aggregator.py).
    They are top-level, not a map, so that the first write of an item can set one in the
    same conditional update (a map entry cannot be set before the map exists)."""

    class Meta(_Meta):
        table_name = _NAMES.rollups

    tenant_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    requests = NumberAttribute(default=0)
    errors = NumberAttribute(default=0)
    prompt_tokens = NumberAttribute(default=0)
    completion_tokens = NumberAttribute(default=0)
    cost_micros = NumberAttribute(default=0)
    estimated = NumberAttribute(default=0)  # requests billed at their upper bound
    # -- pricing (issue 14): token details (parts of prompt/completion tokens)
    cached_tokens = NumberAttribute(default=0)
    reasoning_tokens = NumberAttribute(default=0)


class FineTuneJob(Model):
    """A fine-tuning job record registered by an operator; tenant-scoped by its key."""

    class Meta(_Meta):
        table_name = _NAMES.jobs

    tenant_id = UnicodeAttribute(hash_key=True)
    job_id = UnicodeAttribute(range_key=True)
    base_model = UnicodeAttribute()
    suffix = UnicodeAttribute(null=True)
    status = UnicodeAttribute(default="queued")
    created_at = NumberAttribute()
    fine_tuned_model = UnicodeAttribute(null=True)
    live = BooleanAttribute(default=True)


class DetectorState(Model):
    """Per-key state of the spike detector (see functions/detector).

    ``key_id`` is a key id, or ``src#<address>`` for the refusals seen from one source.
    ``version`` makes every save conditional on the version read (concurrent batches of
    different stream shards may touch the same key)."""

    class Meta(_Meta):
        table_name = _NAMES.detector

    key_id = UnicodeAttribute(hash_key=True)
    state = MapAttribute[str, Any](default=dict)
    version = VersionAttribute()
    updated_at = UnicodeAttribute(null=True)


class GateItem(Model):
    """An item of the gate table: a key item or a counter shard. Written and read only by
    ``functions/gate/`` (its ``items`` module names every attribute); declared here so the
    table's keys are derived like every other table's."""

    class Meta(_Meta):
        table_name = _NAMES.gate

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


# -- trust policies (issue 15: OIDC token exchange; functions/keys/trust.py) ---------------


class TrustByIssuer(GlobalSecondaryIndex["TrustPolicy"]):
    """The token route finds the policies of a token's issuer with one Query."""

    class Meta:
        index_name = "by_issuer"
        projection = AllProjection()

    issuer = UnicodeAttribute(hash_key=True)
    policy_id = UnicodeAttribute(range_key=True)


class TrustByTenant(GlobalSecondaryIndex["TrustPolicy"]):
    class Meta:
        index_name = "by_tenant"
        projection = AllProjection()

    tenant_id = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class TrustPolicy(Model):
    """Which external (OIDC) identities may exchange their token for a short-lived key of a
    tenant, and what that key may do. Each policy owns a root key of the tenant (principal
    ``trust:<policy_id>``, its secret never kept); every exchanged key is a delegated key of
    it, so deleting the policy revokes that root and its children (functions/keys/trust.py)."""

    class Meta(_Meta):
        table_name = _NAMES.trust

    policy_id = UnicodeAttribute(hash_key=True)
    tenant_id = UnicodeAttribute()
    issuer = UnicodeAttribute()
    audience = UnicodeAttribute()
    subject = UnicodeAttribute()  # an anchored, case-sensitive glob (fnmatchcase)
    claims = MapAttribute[str, Any](null=True)  # claim -> the exact value required
    principal_template = UnicodeAttribute(default="{sub}")
    scopes = ListAttribute(of=UnicodeAttribute, default=list)
    environment = UnicodeAttribute(default="live")
    token_budget = NumberAttribute(null=True)
    spend_budget_micros = NumberAttribute(null=True)  # of each issued key (integer micro-dollars)
    ttl_seconds = NumberAttribute(default=3600)
    allow_cidrs = ListAttribute(of=UnicodeAttribute, null=True)
    tags = MapAttribute[str, Any](null=True)  # fixed tags of every issued key
    claim_tags = MapAttribute[str, Any](null=True)  # tag name -> the claim it takes its value from
    max_uses = NumberAttribute(default=1)  # how many times one token may be exchanged
    exchanges_per_minute = NumberAttribute(default=60)  # per issuer and subject
    root_key_id = UnicodeAttribute()
    status = UnicodeAttribute(default=ACTIVE)  # active | deleted
    status_reason = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()
    deleted_at = UnicodeAttribute(null=True)
    by_issuer = TrustByIssuer()
    by_tenant = TrustByTenant()


class Notice(Model):
    """An item of the notices table (functions/notices/): a tenant's webhook registration
    (``sk`` = ``webhook``: its URL and signing secret) or one ``usage.threshold`` notice
    (``sk`` = ``notice#<YYYY-MM>#<metric>#<pct, 3 digits>``: written once by a conditional
    put, then its delivery state). Written and read only through ``functions/notices/``
    (its ``store`` module names every attribute); declared here so the table's keys are
    derived like every other table's. The table's stream feeds the delivery function
    (``functions/notices/stream.py`` filters it to notices waiting for delivery)."""

    class Meta(_Meta):
        table_name = _NAMES.notices

    tenant_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


# -- billing export (issue 14 item 5) ----------------------------------------------------


class BillingItem(Model):
    """The billing export's items, one table (functions/billing/):

    * ``sk = "customer"``: the tenant's billing customers (Stripe customer id; AWS
      Marketplace customer account id and licence ARN), set by ``tollgate billing map``;
    * ``sk = "export#<destination>#<YYYY-MM-DD>"``: the export ledger of one tenant-day at one
      destination: ``hours`` (per hour and metric: quantity exported, events sent, last
      result) and ``pending`` (events written down *before* they are sent, re-sent verbatim
      after a crash: functions/billing/export.py). ``version`` makes each save conditional on
      the version read, so two exporters never both commit the same day.
    """

    class Meta(_Meta):
        table_name = _NAMES.billing

    tenant_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    stripe_customer_id = UnicodeAttribute(null=True)
    marketplace_account_id = UnicodeAttribute(null=True)
    marketplace_license_arn = UnicodeAttribute(null=True)
    hours = MapAttribute[str, Any](null=True)
    pending = MapAttribute[str, Any](null=True)
    pending_at = NumberAttribute(null=True)  # epoch seconds the pending events were written
    updated_at = UnicodeAttribute(null=True)
    version = VersionAttribute()


class TableSpec:
    """How a model's table is provisioned beyond its keys: stream and TTL."""

    def __init__(
        self, kind: str, model: type[Model], stream: str | None = None, ttl: str | None = None
    ) -> None:
        self.kind = kind
        self.model = model
        self.stream = stream  # a StreamViewType, or None
        self.ttl = ttl


TABLES: Final[tuple[TableSpec, ...]] = (
    TableSpec("plans", Plan),
    TableSpec("tenants", Tenant),
    TableSpec("keys", Key, stream="NEW_AND_OLD_IMAGES"),
    TableSpec("secrets", Secret, ttl="ttl"),
    TableSpec("audit", AuditRecord, stream="NEW_IMAGE"),
    TableSpec("usage", UsageEvent, stream="NEW_IMAGE"),
    TableSpec("rollups", Rollup),
    TableSpec("jobs", FineTuneJob),
    TableSpec("detector", DetectorState),
    # ttl: the token route's replay markers and exchange counters expire (gate/items.py)
    TableSpec("gate", GateItem, ttl="ttl"),
    TableSpec("trust", TrustPolicy),
    TableSpec("notices", Notice, stream="NEW_IMAGE"),
    TableSpec("billing", BillingItem),  # billing export (issue 14 item 5)
)


def bind_tables(names: TableNames) -> None:
    """Point every model at the tables ``names`` gives (CLI ``--stack``, tests)."""
    for spec in TABLES:
        spec.model.Meta.table_name = getattr(names, spec.kind)


def table_schema(spec: TableSpec) -> dict[str, Any]:
    """Keys and global indexes of ``spec``'s table, as DynamoDB's CreateTable names them.

    Derived from the pynamodb model: the local stack creates tables from it and ``infra/``
    builds the CDK tables from it, so a key schema is written only in the model.
    """
    schema = spec.model._get_schema()

    def keys(key_schema: Any) -> list[Any]:
        return sorted(key_schema, key=lambda k: k["KeyType"])  # HASH before RANGE

    gsis = [
        {
            "IndexName": gsi["index_name"],
            "KeySchema": keys(gsi["key_schema"]),
            "Projection": {"ProjectionType": gsi["projection"]["ProjectionType"]},
        }
        for gsi in schema["global_secondary_indexes"]
    ]
    return {
        "AttributeDefinitions": list(schema["attribute_definitions"]),
        "KeySchema": keys(schema["key_schema"]),
        "GlobalSecondaryIndexes": gsis,
    }


def create_tables(client: Any, names: TableNames) -> None:
    """Create every table (with its stream and TTL) through a boto3 DynamoDB client.

    Used by the local stack and the tests; AWS gets its tables from CDK.
    """
    for spec in TABLES:
        request: dict[str, Any] = {
            "TableName": getattr(names, spec.kind),
            "BillingMode": "PAY_PER_REQUEST",
            **table_schema(spec),
        }
        if not request["GlobalSecondaryIndexes"]:
            del request["GlobalSecondaryIndexes"]
        if spec.stream:
            request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": spec.stream}
        client.create_table(**request)
        if spec.ttl:
            client.update_time_to_live(
                TableName=request["TableName"],
                TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl},
            )
