"""What the soak works with: its configuration, the plans and keys it seeds, the traffic mix,
and the records it keeps (what each client saw, what the gateway served, the table rows)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Final

from tollgate.local.faults import FaultPlan, new_seed

HOST: Final = "127.0.0.1"
ECHO: Final = "tollgate-echo"
PAID_MODEL: Final = "anthropic.claude-3-haiku-20240307-v1:0"
DEFAULT_FAULTS: Final = "throttle=0.03,error=0.02,crash=0.1,crash_after=0.1"
ACTOR: Final = "soak"
DRAW_HEADER: Final = "x-tollgate-draw"  # a client request's draw key (tollgate/local/faults.py)


# -- configuration ---------------------------------------------------------------------------
@dataclass(frozen=True)
class SoakConfig:
    duration_s: float = 60.0
    clients: int = 16  # half OpenAI SDK, half plain HTTP
    seed: int = field(default_factory=new_seed)  # traffic and fault draws (printed: replay)
    min_requests: int = 0  # the clients go on past the duration until this many were sent
    faults: FaultPlan = field(default_factory=lambda: FaultPlan.parse(DEFAULT_FAULTS))
    outage_every_s: float = 20.0  # 0: no outages
    outage_s: float = 1.0
    drain_timeout_s: float = 180.0
    request_timeout_s: float = 30.0
    log_path: str | None = None
    extra_keys: int = 2000  # keys issued to soak-open before the run (half revoked): scale

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["faults"] = asdict(self.faults)
        out["replay"] = self.replay()
        return out

    def replay(self) -> str:
        """The command that runs this soak again: the same traffic and the same fault draws
        per request (docs/soak.md, "Replay a run")."""
        f = self.faults
        shares = ",".join(f"{name}={value:g}" for name, value in asdict(f).items() if value)
        parts = [
            "python -m tollgate.local.soak",
            f"--seed {self.seed}",
            f"--duration {self.duration_s:g}",
            f"--clients {self.clients}",
            f"--faults '{shares}'",
            f"--outage-every {self.outage_every_s:g}",
            f"--outage {self.outage_s:g}",
        ]
        if self.min_requests:
            parts.append(f"--min-requests {self.min_requests}")
        parts.append(f"--extra-keys {self.extra_keys}")
        return " ".join(parts)


# -- what the soak records -------------------------------------------------------------------
@dataclass
class Sent:
    """One request as its client saw it."""

    client: str  # "sdk" | "http"
    key: str  # the key's label (KEYS below)
    action: str
    status: int  # 0: no HTTP answer
    code: str = ""
    request_id: str = ""
    t0: float = 0.0
    t1: float = 0.0
    tokens: int = 0  # prompt + completion reported to the client
    error: str = ""
    cut: bool = False  # a stream the client closed after a few chunks (tokens unknown to it)


@dataclass
class Served:
    """One request as the gateway served it."""

    request_id: str
    method: str
    path: str
    operation: str
    status: int
    code: str
    auth: str  # none | unauthorized | deny | failure | allow | limit
    key_id: str = ""
    tenant_id: str = ""
    environment: str = ""
    principal: str = ""
    auth_t0: float = 0.0
    minute: int | None = None  # the gate's minute window the request was counted in
    count: int | None = None  # its position in that window
    month: str = ""
    openai_body: bool = True  # an error answer has the OpenAI error body
    traceback: bool = False
    failure: str = ""  # what the function raised when it failed (API Gateway logs it)
    counted: bool = False  # the gate's shard write counted it (whatever the answer was)


@dataclass
class KeyInfo:
    label: str
    secret: str | None  # what the client sends (None: no key header)
    key_id: str = ""
    tenant_id: str = ""
    environment: str = ""
    scopes: frozenset[str] = frozenset()
    principal: str = ""
    valid: bool = True  # may be admitted at all (before any mid-run stop)
    stopped_at: float | None = None  # epoch s when the revoke/suspend call returned


@dataclass
class Row:
    group: str
    name: str
    value: Any
    target: str = ""
    ok: bool | None = None
    note: str = ""


# -- the plans and keys ----------------------------------------------------------------------
def plans(duration_s: float) -> dict[str, dict[str, Any]]:
    """Plans whose limits the soak reaches (scaled to the run's length, sized for the ~30
    requests/s a busy 2-core machine serves: each limit is reached about halfway through)."""
    scale = max(duration_s, 10.0)
    common: dict[str, Any] = {
        "models": [ECHO],
        "spike_policy": "off",
        "price_per_1k_prompt": "0.5",
        "price_per_1k_completion": "1.5",
    }
    return {
        "soak-open": {**common, "requests_per_minute": 100_000},
        "soak-rpm": {**common, "requests_per_minute": 20},
        # the quota is spread over 4 counter shards: exact only if borrowing is (issue 12)
        "soak-quota": {**common, "requests_per_month": int(1.0 * scale), "counter_shards": 4},
        "soak-tokens": {**common, "tokens_per_month": int(8 * scale)},
    }


TENANTS: Final = {
    "soak-open": "soak-open",
    "soak-other": "soak-open",
    "soak-rpm": "soak-rpm",
    "soak-quota": "soak-quota",
    "soak-tokens": "soak-tokens",
}
AGENT_BUDGET_PER_S: Final = 6  # the delegated agent's token budget, per second of run

# label -> (tenant, environment, scopes or None, how); "how" says what makes it special.
KEYS: Final[dict[str, tuple[str, str, tuple[str, ...] | None, str]]] = {
    "open-live": ("soak-open", "live", None, ""),
    "open-test": ("soak-open", "test", None, ""),
    "open-narrow": ("soak-open", "live", ("inference:invoke",), ""),
    "agent": ("soak-open", "live", None, "delegated"),
    "rpm-live": ("soak-rpm", "live", None, ""),
    "rpm-test": ("soak-rpm", "test", None, ""),
    "quota-live": ("soak-quota", "live", None, ""),
    "tokens-live": ("soak-tokens", "live", None, ""),
    "other-live": ("soak-other", "live", None, ""),
    "doomed": ("soak-open", "live", None, "revoke"),
    "doomed-child": ("soak-open", "live", None, "revoke-child"),
    "paused": ("soak-open", "test", None, "suspend"),
    "leaked": ("soak-open", "live", None, "leak"),
    "pre-revoked": ("soak-open", "live", None, "pre-revoked"),
    "expired": ("soak-open", "live", None, "expired"),
    "bad-checksum": ("soak-open", "live", None, "bad-checksum"),
    "unknown": ("", "live", None, "unknown"),
    "garbage": ("", "", None, "garbage"),
    "missing": ("", "", None, "missing"),
}
KEY_WEIGHTS: Final = {
    "open-live": 14,
    "open-test": 8,
    "open-narrow": 4,
    "agent": 6,
    "rpm-live": 6,
    "rpm-test": 4,
    "quota-live": 5,
    "tokens-live": 6,
    "other-live": 3,
    "doomed": 4,
    "doomed-child": 2,
    "paused": 4,
    "leaked": 3,
    "pre-revoked": 2,
    "expired": 2,
    "bad-checksum": 2,
    "unknown": 2,
    "garbage": 1,
    "missing": 1,
}
SDK_ACTIONS: Final = {
    "chat": 40,
    "chat-stream": 6,
    "chat-stream-cut": 4,
    "chat-paid-model": 4,
    "models": 12,
    "ft-list": 8,
    "ft-get": 8,
    "ft-get-other": 4,
}
HTTP_ACTIONS: Final = {
    "chat": 24,
    "chat-max-tokens": 6,
    "chat-bad-json": 4,
    "chat-bad-schema": 4,
    "chat-x-api-key": 4,
    "models": 8,
    "tool-calculator": 6,
    "tool-token-count": 4,
    "tool-utc-now": 3,
    "tool-unknown": 2,
    "tool-bad-args": 3,
    "ft-list": 4,
    "ft-list-bad-limit": 2,
    "ft-get": 3,
    "webhook-unsigned": 3,
    "webhook-bad-signature": 3,
    "webhook-unknown-key": 2,
    "webhook-false-positive": 2,
    "webhook-malformed": 2,
    "unknown-route": 2,
}
ROUTE_OF: Final = {  # action -> (method, path pattern) of the route it calls
    "chat": ("POST", "/v1/chat/completions"),
    "models": ("GET", "/v1/models"),
    "tool": ("POST", "/v1/tools/{name}/invoke"),
    "ft-list": ("GET", "/v1/fine_tuning/jobs"),
    "ft-get": ("GET", "/v1/fine_tuning/jobs/{id}"),
}
_TEXT: Final = "toll gate meter bill key tenant quota budget token stream spike revoke audit model"
WORDS: Final = (*_TEXT.split(), "agent", "minute", "month", "limit", "fault", "retry")


def route_family(action: str) -> str:
    for prefix in ("chat", "tool", "ft-list", "ft-get", "models", "webhook"):
        if action.startswith(prefix):
            return prefix
    return action
