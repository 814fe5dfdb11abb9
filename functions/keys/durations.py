"""Durations as operators type them: ``90s``, ``15m``, ``1h``, ``30d``, ``2w``, or compounds
such as ``1h30m``. A bare ``0`` means zero (e.g. ``--grace 0``)."""

from __future__ import annotations

import re
from typing import Final

from functions.keys.errors import InvalidInput, quote

UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
MAX_SECONDS: Final = 10 * 366 * 86_400  # ten years: far beyond any sane key lifetime
_WHOLE: Final = re.compile(r"(?:\d{1,9}[smhdw])+")
_PART: Final = re.compile(r"(\d+)([smhdw])")


def parse_duration(text: str, *, allow_zero: bool = False) -> int:
    """Seconds in ``text``; :class:`InvalidInput` if it is not a duration in range."""
    raw = text.strip().lower() if isinstance(text, str) else ""
    if raw == "0":
        seconds = 0
    elif _WHOLE.fullmatch(raw):
        seconds = sum(int(n) * UNITS[unit] for n, unit in _PART.findall(raw))
    else:
        raise InvalidInput(
            f"bad duration {quote(text)}: "
            "use a number and a unit s, m, h, d or w, e.g. 90s, 1h, 30d"
        )
    if seconds == 0 and not allow_zero:
        raise InvalidInput(f"bad duration {quote(text)}: must be more than zero")
    if seconds > MAX_SECONDS:
        raise InvalidInput(f"bad duration {quote(text)}: at most ten years")
    return seconds


def format_duration(seconds: int) -> str:
    """The shortest compound form of ``seconds`` (``5400`` -> ``1h30m``); ``0`` -> ``0s``."""
    if seconds <= 0:
        return "0s"
    parts = []
    for unit, size in sorted(UNITS.items(), key=lambda kv: -kv[1]):
        n, seconds = divmod(seconds, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)
