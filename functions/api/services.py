"""Everything the logic needs, built once per container and lazily (no client at import)."""

from __future__ import annotations

from dataclasses import dataclass

from functions.api.budget import Budget
from functions.api.config import ApiSettings
from functions.api.plans import PlanCache
from functions.api.prices import Prices
from functions.api.providers import Providers
from functions.api.providers.bedrock import BedrockProvider, default_client
from functions.api.providers.echo import EchoProvider
from functions.api.providers.upstream import SecretCache, UpstreamProvider, secretsmanager_reader
from functions.api.store import ApiStore


@dataclass
class Services:
    settings: ApiSettings
    store: ApiStore
    plans: PlanCache
    budget: Budget
    providers: Providers
    prices: Prices

    @classmethod
    def build(cls, settings: ApiSettings | None = None) -> Services:
        settings = settings or ApiSettings.from_env()
        store = ApiStore(settings.tables)
        arn = settings.upstream_secret_arn
        secret = SecretCache(secretsmanager_reader(arn) if arn else None, settings.secret_ttl_s)
        providers = Providers(
            {
                "bedrock": lambda: BedrockProvider(
                    lambda: default_client(settings.bedrock_region, settings.model_timeout_s)
                ),
                "upstream": lambda: UpstreamProvider(secret),
                "echo": lambda: EchoProvider(settings.echo_chunk_delay_ms / 1000),
            }
        )
        return cls(settings, store, PlanCache(store), Budget(store), providers,
                   Prices(store, settings.price_ttl_s))  # fmt: skip
