"""Walks of the delegation tree, as pure functions (no I/O): which keys a revocation reaches
and which named key reached each. ``parents`` maps a key id to its parent's (None: a root).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def with_descendants(roots: Sequence[str], parents: Mapping[str, str | None]) -> list[str]:
    """``roots`` then every key delegated from them (at any depth), without duplicates."""
    children: dict[str, list[str]] = {}
    for kid, parent in sorted(parents.items()):
        if parent:
            children.setdefault(parent, []).append(kid)
    out: list[str] = []
    seen: set[str] = set()
    stack = list(reversed(roots))
    while stack:
        kid = stack.pop()
        if kid in seen:
            continue
        seen.add(kid)
        out.append(kid)
        stack.extend(reversed(children.get(kid, [])))
    return out


def root_of(key_id: str, parents: Mapping[str, str | None], roots: set[str]) -> str:
    """The named key whose revocation reached ``key_id`` (itself if it was named)."""
    seen = set()
    current = key_id
    while current not in roots and current not in seen:
        seen.add(current)
        parent = parents.get(current)
        if not parent:
            break
        current = parent
    return current
