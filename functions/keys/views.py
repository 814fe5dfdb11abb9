"""Plain, JSON-ready views of the stored items: what the CLI prints and an API would return.

A key view never holds the secret or its hash (the ``Key`` item holds neither).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from functions.common.models import ACTIVE, EXPIRED, AuditRecord, Key, Plan, Tenant
from functions.keys.rules import micros_to_usd
from functions.pricing.money import usd


def iso(epoch: float) -> str:
    """``epoch`` as ISO 8601 UTC with microseconds (sorts as text)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_seconds(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _usd(micros: Any) -> str | None:
    """Micro-dollars as USD with six decimals (None: unlimited / none)."""
    return None if micros is None else usd(int(micros))


def _num(value: Any) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


def key_status(key: Key, now: float) -> str:
    """The status to show: the stored one, or ``expired`` for an active key past expiry."""
    if key.status == ACTIVE and key.expires_at is not None and key.expires_at <= now:
        return EXPIRED
    return key.status


def plan_view(plan: Plan) -> dict[str, Any]:
    return {
        "name": plan.name,
        "requests_per_minute": _int(plan.requests_per_minute),
        "requests_per_month": _int(plan.requests_per_month),
        "tokens_per_month": _int(plan.tokens_per_month),
        "test_requests_per_month": _int(plan.test_requests_per_month),
        "test_tokens_per_month": _int(plan.test_tokens_per_month),
        "counter_shards": int(plan.counter_shards or 1),
        "spend_per_month": _usd(plan.spend_per_month_micros),
        "spend_per_month_micros": _int(plan.spend_per_month_micros),
        "scopes": sorted(plan.scopes or []),
        "models": sorted(plan.models or []),
        "tools": None if plan.tools is None else sorted(plan.tools),
        "price_per_1k_prompt": micros_to_usd(plan.price_prompt_micros_per_1k),
        "price_per_1k_completion": micros_to_usd(plan.price_completion_micros_per_1k),
        "price_prompt_micros_per_1k": int(plan.price_prompt_micros_per_1k or 0),
        "price_completion_micros_per_1k": int(plan.price_completion_micros_per_1k or 0),
        "spike_policy": plan.spike_policy,
        "spike_factor": _num(plan.spike_factor),
        "spike_floor_tpm": int(plan.spike_floor_tpm),
        "created_at": plan.created_at,
        # pricing (issue 14): the plan's per-model overrides, USD per 1M tokens
        "model_prices": _model_prices(plan),
    }


def _model_prices(plan: Plan) -> dict[str, dict[str, str | None]]:
    from functions.pricing.catalogue import price_from_map
    from functions.pricing.money import usd

    raw = plan.model_prices.as_dict() if plan.model_prices is not None else {}
    out = {}
    for model, value in sorted(raw.items()):
        price = price_from_map(value, "plan-override")
        out[model] = {
            "prompt": usd(price.prompt),
            "completion": usd(price.completion),
            "cached_prompt": None if price.cached_prompt is None else usd(price.cached_prompt),
            "reasoning": None if price.reasoning is None else usd(price.reasoning),
        }
    return out


def tenant_view(
    tenant: Tenant, counters: dict[str, dict[str, Any]] | None = None, keys: int | None = None
) -> dict[str, Any]:
    """``counters``: the gate's totals per environment (``functions/gate/admin.py``
    ``shard_totals``); the month fields show the live ones."""
    live = (counters or {}).get("live") or {}
    view = {
        "tenant_id": tenant.tenant_id,
        "plan": tenant.plan,
        "status": tenant.status,
        "created_at": tenant.created_at,
        "requests_per_minute": _int(tenant.lim_rpm),
        "requests_per_month": _int(tenant.lim_rmo),
        "tokens_per_month": _int(tenant.lim_tmo),
        "test_requests_per_month": _int(tenant.lim_test_rmo),
        "test_tokens_per_month": _int(tenant.lim_test_tmo),
        "counter_shards": int(tenant.counter_shards or 1),
        "scopes": sorted(tenant.plan_scopes or []),
        "month": live.get("month") or None,
        "month_requests": int(live.get("requests") or 0),
        "month_tokens": int(live.get("tokens") or 0),
        "month_spend": live.get("spend_usd") or usd(0),
        "spend_per_month": live.get("spend_limit_usd"),
    }
    if counters is not None:
        view["counters"] = counters
    if keys is not None:
        view["keys"] = keys  # keys ever issued (revoked and expired included)
    return view


def key_view(key: Key, now: float) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "tenant_id": key.tenant_id,
        "environment": key.environment,
        "principal": key.principal,
        "scopes": sorted(key.scopes or []),
        "status": key_status(key, now),
        "status_reason": key.status_reason,
        "parent_key_id": key.parent_key_id,
        "created_at": key.created_at,
        "expires_at": iso_seconds(key.expires_at),
        "token_budget": _int(key.token_budget),
        "spend_budget": _usd(key.spend_budget_micros),
        "spend_budget_micros": _int(key.spend_budget_micros),
        "secret_serial": int(key.secret_serial or 1),
        "rotated_at": key.rotated_at,
        # keyattrs: networks, tags and the per-key limit (None: anywhere / the plan's)
        "allow_cidrs": list(key.allow_cidrs) if key.allow_cidrs else None,
        "tags": key_tags(key),
        "requests_per_minute": _int(key.requests_per_minute),
    }


def key_tags(key: Key) -> dict[str, str]:
    """A key's tags as a plain, sorted dict (``{}`` when it has none)."""
    raw = key.tags.as_dict() if key.tags is not None else {}
    return {str(k): str(v) for k, v in sorted(raw.items())}


def audit_view(record: AuditRecord) -> dict[str, Any]:
    return {
        "at": record.at,
        "action": record.action,
        "key_id": None if record.key_id in (None, "-") else record.key_id,
        "tenant_id": None if record.tenant_id in (None, "-") else record.tenant_id,
        "actor": record.actor,
        "reason": record.reason or "",
        "details": record.details.as_dict() if record.details is not None else {},
    }
