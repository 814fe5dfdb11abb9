"""API Gateway REST proxy events for the managed API, and tenants/keys written straight into
the tables (no keys service), as the authorizer would leave them."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from functions.api import handler as api
from functions.common import keyformat
from functions.common.models import FineTuneJob, Plan, Tenant
from functions.common.routes import SCOPES, match
from functions.gate import items as gate
from tests import gate_support

ALL_SCOPES = ",".join(sorted(SCOPES))


class LambdaContext:
    function_name = "tollgate-api"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:tollgate-api"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


# -- tables ------------------------------------------------------------------------------
def make_plan(name: str = "starter", **fields: Any) -> Plan:
    values: dict[str, Any] = {
        "created_at": "2026-01-01T00:00:00Z",
        "scopes": sorted(SCOPES),
        "models": ["tollgate-echo"],
        **fields,
    }
    plan = Plan(name=name, **values)
    plan.save()
    return plan


def make_tenant(
    tenant_id: str = "acme",
    plan: Plan | None = None,
    *,
    tokens_per_month: int | None = None,
    used: int = 0,
    month: str | None = None,
    **fields: Any,
) -> Tenant:
    plan = plan or make_plan()
    tenant = Tenant(
        tenant_id=tenant_id,
        plan=plan.name,
        created_at="2026-01-01T00:00:00Z",
        lim_rpm=None,
        lim_rmo=None,
        lim_tmo=tokens_per_month,
        plan_scopes=list(plan.scopes),
        **fields,
    )
    tenant.save()
    limited = Plan(**{**plan.attribute_values, "tokens_per_month": tokens_per_month})
    gate_support.configure(tenant, limited)
    gate_support.set_shard(tenant_id, tk=used, mo=month or gate.month_window())
    return tenant


def make_key(
    tenant_id: str = "acme",
    *,
    parent: str | None = None,
    budget: int | None = None,
    used: int = 0,
    spend_budget: int | None = None,
) -> str:
    """A key's gate item; returns the key id."""
    key_id = keyformat.new_key_id()
    gate_support.new_key(tenant_id, key_id, parent, budget, spend_budget)
    if budget is not None and used:
        gate_support.set_key(tenant_id, key_id, u=used)
    return key_id


def make_job(tenant_id: str, job_id: str, base_model: str = "tollgate-echo", **f: Any) -> None:
    FineTuneJob(
        tenant_id=tenant_id, job_id=job_id, base_model=base_model, created_at=1_700_000_000, **f
    ).save()


# -- events ------------------------------------------------------------------------------
@dataclass
class Who:
    """The authorizer's context for one key (what functions/authorizer puts there)."""

    tenant_id: str = "acme"
    key_id: str = "key_test000000000001"
    principal: str = "svc"
    parent_key_id: str = ""
    environment: str = "live"
    scopes: str = ALL_SCOPES
    plan: str = "starter"
    month: str = field(default_factory=gate.month_window)
    lim_tmo: str = ""
    budget: str = ""
    spend_alloc: str = ""  # the shard's spend allocation, micro-dollars ("": none)
    spend_budget: str = ""  # a delegated key's spend budget, micro-dollars ("": none)
    shard: str = "0"  # the counter shard that admitted the request
    verdict: str = "allow"
    retry_after: str = "0"
    code: str = "ok"
    message: str = ""
    type: str = ""

    def context(self, operation: str) -> dict[str, Any]:
        """As the authorizer writes it (functions/gate/contract.py): limits as numbers,
        -1 for none."""
        values = {k: v for k, v in self.__dict__.items() if k != "lim_tmo"}
        values["token_alloc"] = int(self.lim_tmo) if self.lim_tmo != "" else -1
        values["budget"] = int(self.budget) if self.budget != "" else -1
        values["spend_alloc"] = int(self.spend_alloc) if self.spend_alloc != "" else -1
        values["spend_budget"] = int(self.spend_budget) if self.spend_budget != "" else -1
        return {"principalId": self.key_id, **values, "operation": operation}


def who_for(tenant_id: str, key_id: str, **over: Any) -> Who:
    """The context the authorizer gives ``key_id`` now, read from the gate."""
    t = gate_support.view(tenant_id)
    entry = t["gate"].get(key_id, {})
    budget = entry.get(gate.BUDGET)
    shard = t["shards"][0] if t["shards"] else {}
    values: dict[str, Any] = {
        "tenant_id": tenant_id,
        "key_id": key_id,
        "plan": t["plan"],
        "month": t["mo"] or gate.month_window(),
        "lim_tmo": "" if shard.get("ta") is None else str(int(shard["ta"])),
        "budget": "" if budget is None else str(int(budget)),
        "spend_alloc": "" if shard.get(gate.SPEND_ALLOC) is None else str(int(shard["sa"])),
        "spend_budget": "" if entry.get(gate.SPEND_BUDGET) is None else str(int(entry["sb"])),
        "parent_key_id": entry.get("p") or "",
        **over,
    }
    return Who(**values)


def event(
    method: str,
    path: str,
    who: Who | None = None,
    *,
    body: Any = None,
    raw_body: str | None = None,
    request_id: str | None = None,
    query: dict[str, str] | None = None,
    source_ip: str = "203.0.113.7",
    user_agent: str = "OpenAI/Python 1.0",
    authorizer: bool = True,
) -> dict[str, Any]:
    """A REST proxy event as API Gateway sends it after the authorizer allowed it."""
    matched = match(method, path)
    assert matched is not None, (method, path)
    route, params = matched
    who = who or Who()
    text = raw_body if raw_body is not None else (None if body is None else json.dumps(body))
    now = time.time()
    rc: dict[str, Any] = {
        "accountId": "123456789012",
        "apiId": "local",
        "httpMethod": method,
        "identity": {"sourceIp": source_ip, "userAgent": user_agent},
        "path": f"/prod{path}",
        "protocol": "HTTP/1.1",
        "requestId": request_id or str(uuid.uuid4()),
        "requestTimeEpoch": int(now * 1000),
        "resourcePath": route.path,
        "stage": "prod",
    }
    if authorizer:
        rc["authorizer"] = who.context(route.operation)
    return {
        "resource": route.path,
        "path": path,
        "httpMethod": method,
        "headers": {"Content-Type": "application/json", "User-Agent": user_agent},
        "multiValueHeaders": {
            "Content-Type": ["application/json"],
            "User-Agent": [user_agent],
        },
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": params or None,
        "stageVariables": None,
        "requestContext": rc,
        "body": text,
        "isBase64Encoded": False,
    }


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    text: str

    @property
    def json(self) -> Any:
        return json.loads(self.text)

    @property
    def error(self) -> dict[str, Any]:
        err: dict[str, Any] = self.json["error"]
        return err


def body_text(out: dict[str, Any]) -> str:
    """A proxy response's body as text; a streamed body (an iterator) read to its end."""
    body = out.get("body") or ""
    if isinstance(body, str):
        return body
    return "".join(p.decode() if isinstance(p, bytes) else p for p in body)


def call(evt: dict[str, Any]) -> Reply:
    out = api.handler(evt, LambdaContext())
    headers = {k.lower(): str(v) for k, v in (out.get("headers") or {}).items()}
    for k, values in (out.get("multiValueHeaders") or {}).items():
        headers[k.lower()] = str(values[-1])
    return Reply(out["statusCode"], headers, body_text(out))


def chat_body(text: str = "hello", model: str = "tollgate-echo", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def chat(who: Who, text: str = "hello", **extra: Any) -> Reply:
    return call(event("POST", "/v1/chat/completions", who, body=chat_body(text, **extra)))


# -- test plumbing ---------------------------------------------------------------------------
def fresh_api(services: Any = None) -> None:
    """Point the API at the (fresh) moto tables: new DynamoDB client, empty caches."""
    from functions.common import ddb

    ddb.reset_client()
    api.reset(services)


class RoundTrips:
    """Counts DynamoDB API calls made through ``functions.common.ddb``'s clients."""

    def __init__(self) -> None:
        from functions.common import ddb

        self.calls: list[str] = []
        self._clients = (ddb.client(), ddb.client_once())
        for client in self._clients:
            client.meta.events.register("before-call.dynamodb", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)

    def reset(self) -> None:
        self.calls.clear()

    def close(self) -> None:
        for client in self._clients:
            client.meta.events.unregister("before-call.dynamodb", self._count)

    def __enter__(self) -> RoundTrips:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def events_table(dynamodb: Any) -> list[dict[str, Any]]:
    """Every usage event, as plain values."""
    from functions.common.ddb import item_from_ddb

    items = dynamodb.scan(TableName="tollgate-usage", ConsistentRead=True)["Items"]
    return [item_from_ddb(i) for i in items]


def tenant_item(dynamodb: Any, tenant_id: str = "acme") -> dict[str, Any]:
    """The tenant with its live counters and key items (tests/gate_support.py ``view``)."""
    return gate_support.view(tenant_id)


class Spy:
    """A provider that records its calls and delegates to ``inner`` (or raises ``error``)."""

    def __init__(self, inner: Any = None, error: BaseException | None = None, during: Any = None):
        from functions.api.providers.echo import EchoProvider

        self.inner = inner or EchoProvider()
        self.kind = getattr(self.inner, "kind", "spy")
        self.error = error
        self.during = during  # called inside the model call (e.g. to change the tenant item)
        self.calls: list[Any] = []

    def prompt_upper_bound(self, messages: Any) -> int:
        bound: int = self.inner.prompt_upper_bound(messages)
        return bound

    def complete(self, call: Any) -> Any:
        self.calls.append(call)
        if self.during is not None:
            self.during()
        if self.error is not None:
            raise self.error
        return self.inner.complete(call)


def install(kind: str, provider: Any) -> Any:
    api.services().providers.set(kind, provider)
    return provider


# -- through the real authorizer -------------------------------------------------------------
def make_secret(
    tenant_id: str, key_id: str, *, environment: str = "live", principal: str = "svc",
    scopes: str = ALL_SCOPES, parent: str | None = None,
) -> str:  # fmt: skip
    """A secret for the gate entry ``key_id`` (the ``Secret`` item the authorizer reads)."""
    from functions.common.models import Secret

    secret = keyformat.generate(environment)
    Secret(
        secret_hash=keyformat.hash_secret(secret),
        key_id=key_id,
        tenant_id=tenant_id,
        environment=environment,
        principal=principal,
        scopes=scopes.split(","),
        parent_key_id=parent,
        serial=1,
        created_at="2026-01-01T00:00:00Z",
    ).save()
    return secret


def through_gate(secret: str, method: str, path: str, body: Any = None) -> Reply:
    """What API Gateway does: the REQUEST authorizer, its policy, then the proxy event."""
    from functions.authorizer import handler as authorizer

    proxy = event(method, path, body=body, authorizer=False)
    rc = proxy["requestContext"]
    arn = f"arn:aws:execute-api:us-east-1:123456789012:local/prod/{method}{path}"
    headers = {"Authorization": f"Bearer {secret}"}
    request = {
        "type": "REQUEST",
        "methodArn": arn,
        "resource": proxy["resource"],
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {},
        "multiValueQueryStringParameters": {},
        "pathParameters": proxy["pathParameters"] or {},
        "stageVariables": {},
        "requestContext": rc,
    }
    try:
        policy = authorizer.handler(request, LambdaContext())
    except Exception as exc:  # "Unauthorized" -> 401; anything else -> 503
        status = 401 if str(exc) == "Unauthorized" else 503
        return Reply(status, {}, json.dumps({"error": {"code": str(exc)}}))
    statement = policy["policyDocument"]["Statement"][0]
    if statement["Effect"] != "Allow":
        ctx = policy.get("context") or {}
        return Reply(403, {}, json.dumps({"error": {"code": ctx.get("code")}}))
    rc["authorizer"] = {"principalId": policy["principalId"], **policy["context"]}
    return call(proxy)
