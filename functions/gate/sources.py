"""Networks a key may be used from (``--allow-cidr``): parsing, containment, the check.

The list lives on the gate's key item (``functions/gate/items.py`` ``ac``) as normalised
CIDR strings, so the authorizer gets it back from the key write it already makes and checks
the request's source address without another round trip (docs/architecture.md). The source
address is API Gateway's ``requestContext.identity.sourceIp`` (the TCP peer API Gateway saw),
never a header such as ``X-Forwarded-For`` that a client writes itself (docs/threat-model.md).

Pure functions, standard library only (the authorizer's cold start).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Final

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Bounds the key item's size: 16 of the longest IPv6 CIDRs (43 characters each) keep the key
# item under 1 KB, one write unit per request (measured: bench/keyattrs.py).
MAX_CIDRS: Final = 16
MAX_CIDR_TEXT: Final = 64


class BadCidr(ValueError):
    """A CIDR that does not parse strictly (host bits set, bad prefix, not an address)."""


def parse_cidr(text: str) -> Network:
    """One CIDR, strictly: ``10.0.0.0/8`` or ``2001:db8::/32``; a bare address is its /32
    or /128. Host bits set (``10.0.0.1/8``) is an error, not silently masked: it is
    usually a typo for a narrower network. An IPv4-mapped IPv6 network is stored as the
    IPv4 network it means, so both spellings of a source match it."""
    if not isinstance(text, str) or not text.strip() or len(text.strip()) > MAX_CIDR_TEXT:
        raise BadCidr(f"bad CIDR {text!r}: expected e.g. 10.0.0.0/8 or 2001:db8::/32")
    value = text.strip()
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        reason = "host bits set" if "host bits set" in str(exc) else "not a CIDR"
        raise BadCidr(
            f"bad CIDR {value!r} ({reason}): expected e.g. 10.0.0.0/8 or 2001:db8::/32"
        ) from None
    if isinstance(network, ipaddress.IPv6Network):
        mapped = network.network_address.ipv4_mapped
        if mapped is not None and network.prefixlen >= 96:
            return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


def normalise(values: Iterable[str]) -> list[str]:
    """Parse, deduplicate and sort (IPv4 first); at most :data:`MAX_CIDRS`. Raises BadCidr."""
    networks: dict[str, Network] = {}
    for raw in values:
        for part in str(raw).split(","):
            if part.strip():
                network = parse_cidr(part)
                networks[network.compressed] = network
    if not networks:
        raise BadCidr("give at least one CIDR, e.g. 10.0.0.0/8")
    if len(networks) > MAX_CIDRS:
        raise BadCidr(f"at most {MAX_CIDRS} CIDRs per key (got {len(networks)})")
    ordered = sorted(networks.values(), key=lambda n: (n.version, n.network_address, n.prefixlen))
    return [n.compressed for n in ordered]


def within(child: Sequence[str], parent: Sequence[str]) -> str | None:
    """The first network of ``child`` not inside any network of ``parent`` (None: all are)."""
    parents = [parse_cidr(p) for p in parent]
    for text in child:
        network = parse_cidr(text)
        if not any(
            network.version == p.version and network.subnet_of(p)  # type: ignore[arg-type]
            for p in parents
        ):
            return text
    return None


def source_address(value: object) -> Address | None:
    """API Gateway's ``sourceIp`` as an address; an IPv4-mapped IPv6 source
    (``::ffff:192.0.2.1``) is the IPv4 address it carries. None if absent or malformed."""
    if not isinstance(value, str) or not value or len(value) > MAX_CIDR_TEXT:
        return None
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@lru_cache(maxsize=4096)
def _ranges(cidrs: tuple[str, ...]) -> tuple[tuple[int, int, int], ...]:
    """A stored list as ``(version, first, last)`` integer ranges (cached: the hot path
    compares integers, not ``ipaddress`` objects)."""
    out = []
    for text in cidrs:
        network = ipaddress.ip_network(text, strict=False)
        first = int(network.network_address)
        out.append((network.version, first, first + network.num_addresses - 1))
    return tuple(out)


@lru_cache(maxsize=4096)
def _source(value: str) -> tuple[int, int] | None:
    address = source_address(value)
    return None if address is None else (address.version, int(address))


def allows(cidrs: Sequence[str] | None, source_ip: object) -> bool:
    """Whether a request from ``source_ip`` may use a key with this list. No list: any
    source. A list and no (or a malformed) source address: refused (fail closed)."""
    if not cidrs:
        return True
    ok = isinstance(source_ip, str) and len(source_ip) <= MAX_CIDR_TEXT
    source = _source(source_ip) if ok else None
    if source is None:
        return False
    try:
        ranges = _ranges(tuple(str(c) for c in cidrs))
    except ValueError:  # a corrupt stored list refuses, never admits
        return False
    version, ip = source
    return any(v == version and first <= ip <= last for v, first, last in ranges)
