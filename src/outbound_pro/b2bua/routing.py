"""Routing decisions that need no I/O: number formats, special numbers, trusted sources.

Japanese numbering is handled by :mod:`outbound_pro.accounts.numbers` (validation and E.164);
this module adds what only call routing needs: the 1XY special-service codes that must never be
sent to the carrier silently, and the national/E.164 spelling a given trunk expects.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from enum import StrEnum

from outbound_pro.accounts import numbers as jp
from outbound_pro.accounts.models import Trunk

_SPECIAL = re.compile(r"1\d\d")
SPECIAL_NAMES = {
    "110": "police",
    "118": "coast guard",
    "119": "fire and ambulance",
    "117": "time signal",
    "177": "weather forecast",
    "104": "directory assistance",
    "171": "disaster message dial",
}


class NumberFormat(StrEnum):
    NATIONAL = "national"  # 0312345678
    E164 = "e164"  # +81312345678


def dialled_digits(user: str) -> str:
    """The user part of a Request-URI reduced to what was dialled (visual separators off)."""
    return re.sub(r"[\s\-.()]", "", user)


def special_service(digits: str) -> str | None:
    """The name of a special-service code (110, 119, 118 and every other 1XY), else None."""
    if _SPECIAL.fullmatch(digits):
        return SPECIAL_NAMES.get(digits, "special service")
    return None


def to_trunk_format(e164: str, fmt: NumberFormat) -> str:
    """*e164* (``+81...``) as the trunk wants it on the wire."""
    if fmt is NumberFormat.E164:
        return e164
    return jp.parse(e164).national


def from_trunk(user: str) -> str | None:
    """A number as a carrier sent it (national, +81, 81...) → E.164, or None if not ours."""
    digits = dialled_digits(user)
    if digits.startswith("81") and not digits.startswith("+"):
        digits = "+" + digits
    try:
        return jp.normalize(digits)
    except jp.InvalidNumber:
        return None


def _networks(sources: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    out = []
    for text in sources:
        try:
            out.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError:
            continue  # provisioning validated them; a stray name must not trust everyone
    return out


def trusted_trunk(host: str, trunks: Iterable[Trunk]) -> Trunk | None:
    """The trunk whose ``trusted_sources`` (addresses or CIDR networks) contain *host*."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    for trunk in trunks:
        if any(ip in net for net in _networks(trunk.trusted_sources)):
            return trunk
    return None
