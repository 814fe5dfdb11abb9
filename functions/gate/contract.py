"""The one typed contract between the authorizer and the managed API.

The authorizer puts :meth:`GateContext.to_context` into API Gateway's authorizer context
(as strings); the API reads it back with
:meth:`GateContext.from_context`. One module writes and reads every field, so the two
functions cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any


class MalformedContext(ValueError):
    """The context is not one the authorizer wrote (a misconfigured integration)."""


@dataclass(frozen=True)
class GateContext:
    tenant_id: str = ""
    key_id: str = ""
    principal: str = ""
    parent_key_id: str = ""  # "" for a root key
    environment: str = ""
    scopes: str = ""  # comma-separated, sorted
    operation: str = ""
    plan: str = ""
    month: str = ""  # the month the tenant's counters count in ("YYYY-MM")
    shard: int = 0  # the counter shard that admitted the request
    token_alloc: int = -1  # that shard's token allocation (-1: unlimited)
    budget: int = -1  # a delegated key's token budget (-1: none)
    spend_alloc: int = -1  # the admitting shard's spend allocation, micro-dollars (-1: none)
    spend_budget: int = -1  # a delegated key's spend budget, micro-dollars (-1: none)
    verdict: str = ""  # "allow" or a refusal code
    retry_after: int = 0
    code: str = ""
    message: str = ""
    type: str = ""
    # -- keyattrs: the key's tags, ``k=v,k=v`` sorted (functions/common/tags.py; "" none) --
    tags: str = ""

    @property
    def tag_map(self) -> dict[str, str]:
        """The key's tags as a mapping (``{}`` for none)."""
        from functions.common import tags as tagrules

        try:
            return tagrules.decode(self.tags)
        except tagrules.BadTag:
            raise MalformedContext("The authorization context is malformed (tags).") from None

    def to_context(self) -> dict[str, str]:
        """Every value as a string: API Gateway hands the integration strings anyway."""
        return {k: str(v) for k, v in asdict(self).items()}

    def with_decision(self, **decision: Any) -> GateContext:
        return replace(self, **decision)

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(s for s in self.scopes.split(",") if s)

    @property
    def token_limit(self) -> int | None:
        return None if self.token_alloc < 0 else self.token_alloc

    @property
    def key_budget(self) -> int | None:
        return None if self.budget < 0 else self.budget

    @property
    def spend_limit(self) -> int | None:
        return None if self.spend_alloc < 0 else self.spend_alloc

    @property
    def key_spend_budget(self) -> int | None:
        return None if self.spend_budget < 0 else self.spend_budget

    @classmethod
    def from_context(cls, ctx: Mapping[str, Any]) -> GateContext:
        """Read the context back; numbers may arrive as strings (API Gateway's own
        serialisation) and absent fields take their defaults."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in ctx or ctx[f.name] is None:
                continue
            raw = ctx[f.name]
            if f.type == "int":
                try:
                    values[f.name] = int(str(raw).strip() or f.default)  # type: ignore[arg-type]
                except ValueError:
                    raise MalformedContext(
                        f"The authorization context is malformed ({f.name})."
                    ) from None
            else:
                values[f.name] = str(raw)
        return cls(**values)
