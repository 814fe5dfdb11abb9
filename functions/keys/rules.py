"""Input rules of the key lifecycle: names, scopes, prices, limits. Pure functions.

Each either returns the normalised value or raises :class:`InvalidInput`, so the service
checks all of its input before it writes anything.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Final

from functions.common import keyformat
from functions.common import tags as tagrules
from functions.common.routes import SCOPES
from functions.gate import sources
from functions.keys.errors import InvalidInput, quote, redact
from functions.pricing.money import BadAmount, parse_usd

PLAN_NAME: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")
TENANT_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
PRINCIPAL: Final = re.compile(r"[A-Za-z0-9_.@:/-]{1,128}")
MODEL_NAME: Final = re.compile(r"[A-Za-z0-9_.:/-]{1,128}")
KEY_ID: Final = re.compile(re.escape(keyformat.KEY_ID_PREFIX) + r"[0-9A-Za-z]{16}")
SPIKE_POLICIES: Final = ("suspend", "alert", "off")
ENVIRONMENTS: Final = keyformat.ENVIRONMENTS
DEFAULT_MODELS: Final = ("tollgate-echo",)
MAX_REASON: Final = 1000
MAX_ACTOR: Final = 128
MAX_RPM: Final = 10**9
MAX_PRICE_MICROS: Final = 10**15  # a billion dollars per 1k tokens: a typo, not a price
MAX_SPEND_MICROS: Final = 10**15  # a billion dollars of spend: a typo, not a budget


def plan_name(value: str) -> str:
    if not isinstance(value, str) or not PLAN_NAME.fullmatch(value):
        raise InvalidInput(f"bad plan name {quote(value)}: 1-64 characters of A-Z a-z 0-9 _ . -")
    return value


def tenant_id(value: str) -> str:
    if not isinstance(value, str) or not TENANT_ID.fullmatch(value):
        raise InvalidInput(f"bad tenant id {quote(value)}: 1-64 characters of A-Z a-z 0-9 _ -")
    return value


def principal(value: str) -> str:
    if not isinstance(value, str) or not PRINCIPAL.fullmatch(value):
        raise InvalidInput(
            f"bad principal {quote(value)}: 1-128 characters of A-Z a-z 0-9 _ . @ : / -"
        )
    return value


def key_id(value: str) -> str:
    """A syntactically valid key id. A secret passed by mistake is refused without echo."""
    if isinstance(value, str) and keyformat.looks_like_key(value.strip()):
        raise InvalidInput("that is a secret, not a key id (to revoke by secret, use --secret)")
    if not isinstance(value, str) or not KEY_ID.fullmatch(value):
        raise InvalidInput(f"bad key id {quote(value)}: expected key_ and 16 letters or digits")
    return value


def environment(value: str) -> str:
    if value not in ENVIRONMENTS:
        raise InvalidInput(f"bad environment {quote(value)}: use live or test")
    return value


def scopes(values: Iterable[str] | None, allowed: Iterable[str] | None = None) -> list[str]:
    """Known scopes, deduplicated and sorted; each must also be in ``allowed`` if given."""
    if values is None:
        raise InvalidInput("scopes are required")
    wanted = sorted({s.strip() for s in values if s.strip()})
    if not wanted:
        raise InvalidInput("give at least one scope")
    unknown = [s for s in wanted if s not in SCOPES]
    if unknown:
        raise InvalidInput(
            f"unknown scope {quote(unknown[0])}: known scopes are {', '.join(sorted(SCOPES))}"
        )
    if allowed is not None:
        allowed_set = set(allowed)
        outside = [s for s in wanted if s not in allowed_set]
        if outside:
            raise InvalidInput(
                f"scope {quote(outside[0])} is not allowed here "
                f"(allowed: {', '.join(sorted(allowed_set)) or 'none'})"
            )
    return wanted


def models(values: Iterable[str] | None) -> list[str]:
    wanted = sorted({m.strip() for m in (values or DEFAULT_MODELS) if m.strip()})
    if not wanted:
        raise InvalidInput("give at least one model")
    for name in wanted:
        if not MODEL_NAME.fullmatch(name):
            raise InvalidInput(f"bad model name {quote(name)}")
    return wanted


def tools(values: Iterable[str] | None) -> list[str] | None:
    """Tool names a plan entitles; None (not given) means every tool."""
    if values is None:
        return None
    wanted = sorted({t.strip() for t in values if t.strip()})
    if not wanted:
        raise InvalidInput("give at least one tool, or leave --tools out for all tools")
    for name in wanted:
        if not MODEL_NAME.fullmatch(name):
            raise InvalidInput(f"bad tool name {quote(name)}")
    return wanted


def limit(name: str, value: int | None) -> int | None:
    """A non-negative integer limit, or None for unlimited."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"{name} must be a whole number >= 0")
    return value


def price_micros(name: str, value: str | Decimal | int | None) -> int:
    """USD per 1k tokens given as a decimal string -> integer micro-dollars per 1k tokens
    (functions/pricing/money.py ``parse_usd``: never rounded, never negative)."""
    if value is None:
        return 0
    try:
        return parse_usd(name, value, maximum=MAX_PRICE_MICROS, example="0.002")
    except BadAmount as exc:
        raise InvalidInput(str(exc)) from None


def spend_micros(name: str, value: str | Decimal | int | None, *, minimum: int = 0) -> int | None:
    """A spend budget in USD (a decimal string, at most 6 decimals) -> integer micro-dollars;
    None stays None (no budget). Refused as ``parse_usd`` refuses (functions/pricing/money.py),
    above :data:`MAX_SPEND_MICROS` (a billion dollars) and below ``minimum`` micro-dollars."""
    if value is None:
        return None
    try:
        result = parse_usd(name, value, maximum=MAX_SPEND_MICROS, example="25.50")
    except BadAmount as exc:
        raise InvalidInput(str(exc)) from None
    if result < minimum:
        raise InvalidInput(f"{name} must be at least {micros_to_usd(minimum)} USD")
    return result


def micros_to_usd(micros: int | float | Decimal | None) -> str:
    """Integer micro-dollars -> a plain decimal string of USD (``2000`` -> ``"0.002"``)."""
    text = format(Decimal(int(micros or 0)).scaleb(-6), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def spike_policy(value: str) -> str:
    if value not in SPIKE_POLICIES:
        raise InvalidInput(f"bad spike policy {quote(value)}: use suspend, alert or off")
    return value


def spike_factor(value: float) -> float | int:
    try:
        factor = float(value)
    except (TypeError, ValueError):
        raise InvalidInput("spike factor must be a number greater than 1") from None
    if not math.isfinite(factor) or factor <= 1 or factor > 1_000_000:
        raise InvalidInput("spike factor must be a number greater than 1 (and sane)")
    return int(factor) if factor.is_integer() else factor


def counter_shards(value: int | None) -> int:
    """How many counter shards a plan's tenants get (1 to 64; docs/capacity.md)."""
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 64:
        raise InvalidInput("counter shards must be a whole number from 1 to 64")
    return value


def token_budget(value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput("token budget must be a whole number >= 1")
    return value


def spend_budget_micros(value: int | None) -> int | None:
    """A delegated key's spend budget in micro-dollars: a whole number 1..10**15, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput("spend budget must be at least 0.000001 USD (1 micro-dollar)")
    if value > MAX_SPEND_MICROS:
        raise InvalidInput("spend budget is implausibly large (more than 1000000000 USD)")
    return value


def reason(value: str | None) -> str:
    """A non-empty, one-line reason; anything that looks like a secret is redacted."""
    text = " ".join((value or "").split())
    if not text:
        raise InvalidInput("a non-empty --reason is required")
    if len(text) > MAX_REASON:
        raise InvalidInput(f"reason is longer than {MAX_REASON} characters")
    return redact(text)


def actor(value: str | None) -> str:
    text = " ".join((value or "").split())
    if not text or len(text) > MAX_ACTOR:
        raise InvalidInput(f"actor must be 1-{MAX_ACTOR} characters")
    return redact(text)


# -- keyattrs (issue 15): networks, tags, per-key limit ----------------------------------


def allow_cidrs(values: Iterable[str] | None) -> list[str] | None:
    """Normalised CIDRs (``--allow-cidr``; each item may hold several, comma-separated), or
    None for "from anywhere". Strict: host bits set is an error (functions/gate/sources.py)."""
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    try:
        return sources.normalise(values)
    except sources.BadCidr as exc:
        raise InvalidInput(str(exc)) from None


def tags(values: Mapping[str, str] | Iterable[str] | None) -> dict[str, str]:
    """Checked tags from a mapping or ``k=v`` strings (functions/common/tags.py)."""
    if isinstance(values, str):
        values = [values]
    try:
        return tagrules.validate(values)
    except tagrules.BadTag as exc:
        raise InvalidInput(str(exc)) from None


def requests_per_minute(value: int | str | None) -> int | None:
    """A per-key requests-per-minute override: a whole number >= 0, or None / ``none`` to
    clear it (the plan's limit applies again)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit()):
            raise InvalidInput(
                f"bad requests per minute {quote(value)}: a whole number >= 0, or none"
            )
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput("requests per minute must be a whole number >= 0, or none")
    if value > MAX_RPM:
        raise InvalidInput(f"requests per minute must be at most {MAX_RPM}")
    return value
