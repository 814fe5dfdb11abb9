"""Key tags (``--tag k=v``): the rules, and the one text form they travel in.

A key's tags are fixed when it is issued (immutable for its life), stored on its ``Key`` and
``Secret`` items, carried by the authorizer in the context (``GateContext.tags``) and by the
API into every usage event; the aggregator counts them as rollup dimension ``tag`` with value
``k=v`` (functions/usage/logic.py). The text form ``k1=v1,k2=v2`` (sorted by key) is
unambiguous because neither part may contain ``,`` or ``=`` (nor ``#``, the rollup sort key's
separator).

Sizes are bounded because every usage event and every rollup write carries them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

MAX_TAGS: Final = 8
MAX_KEY: Final = 32
MAX_VALUE: Final = 128
TAG_KEY: Final = re.compile(rf"[A-Za-z0-9_.:/-]{{1,{MAX_KEY}}}")
TAG_VALUE: Final = re.compile(rf"[A-Za-z0-9_.:/@+-]{{1,{MAX_VALUE}}}")
KEY_CHARS: Final = "A-Z a-z 0-9 _ . : / -"
VALUE_CHARS: Final = "A-Z a-z 0-9 _ . : / @ + -"


class BadTag(ValueError):
    """A tag that breaks the rules; the message says which and why (one line)."""


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def check(key: str, value: str) -> tuple[str, str]:
    if not isinstance(key, str) or not key:
        raise BadTag("bad tag: the key before '=' is empty")
    if not isinstance(value, str) or not value:
        raise BadTag(f"bad tag {_shown(key)}: the value after '=' is empty")
    if len(key) > MAX_KEY:
        raise BadTag(f"bad tag key {_shown(key)}: longer than {MAX_KEY} characters")
    if not TAG_KEY.fullmatch(key):
        raise BadTag(f"bad tag key {_shown(key)}: use only {KEY_CHARS}")
    if len(value) > MAX_VALUE:
        raise BadTag(f"bad tag value for {_shown(key)}: longer than {MAX_VALUE} characters")
    if not TAG_VALUE.fullmatch(value):
        raise BadTag(f"bad tag value for {_shown(key)}: use only {VALUE_CHARS}")
    return key, value


def parse(text: str) -> tuple[str, str]:
    """One ``k=v`` as given on the command line."""
    if not isinstance(text, str) or "=" not in text:
        raise BadTag(f"bad tag {_shown(str(text))}: expected KEY=VALUE, e.g. team=search")
    key, _, value = text.partition("=")
    return check(key, value)


def validate(tags: Mapping[str, str] | Iterable[str] | None) -> dict[str, str]:
    """A checked copy (sorted by key) of a mapping, or of ``k=v`` strings (a key given twice
    is an error, never a silent last-wins)."""
    if tags is None:
        return {}
    pairs: list[tuple[str, str]]
    if isinstance(tags, Mapping):
        pairs = [check(k, v) for k, v in tags.items()]
    else:
        pairs = [parse(t) for t in tags]
    out: dict[str, str] = {}
    for key, value in pairs:
        if key in out:
            raise BadTag(f"tag {_shown(key)} given twice")
        out[key] = value
    if len(out) > MAX_TAGS:
        raise BadTag(f"at most {MAX_TAGS} tags per key (got {len(out)})")
    return dict(sorted(out.items()))


def encode(tags: Mapping[str, str] | None) -> str:
    """``{"b": "2", "a": "1"}`` -> ``"a=1,b=2"`` (empty mapping: ``""``)."""
    return ",".join(f"{k}={v}" for k, v in sorted((tags or {}).items()))


def decode(text: str | None) -> dict[str, str]:
    """The inverse of :func:`encode`. Raises BadTag on anything :func:`encode` cannot write."""
    if not text:
        return {}
    return validate(text.split(","))


def dimension_values(tags: Mapping[str, str] | None) -> list[str]:
    """The rollup dimension values of a tag set: ``["a=1", "b=2"]``."""
    return [f"{k}={v}" for k, v in sorted((tags or {}).items())]
