"""Japanese telephone numbers: validation and normalisation to E.164 (+81).

Accepted kinds (the service area is Japan, Art. 4-2):

===========  ==========================  ======================
kind         national form               digits incl. the 0
===========  ==========================  ======================
fixed        0ABJ (0 + area + local)     10
ip           050-nnnn-nnnn               11
freedial     0120-nnn-nnn                10
freedial     0800-nnn-nnnn               11
mobile       070/080/090-nnnn-nnnn       11
===========  ==========================  ======================

Refused because they are not subscriber numbers a booth can own or dial here: 020 (M2M and
pagers), 060 (unassigned), 0570 (navi dial), 0180, 0170, 0990 and 0910 (information and
premium services), and anything starting 00 (carrier and international prefixes). Input may
use hyphens, spaces, parentheses, full-width digits, ``+81``, ``+81 (0)``, ``0081`` or the
Japanese international prefix ``010 81``; output is always ``+81`` followed by the national
number without its leading 0.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass


class InvalidNumber(ValueError):
    """Not a Japanese number this service accepts; the message says why."""


@dataclass(frozen=True)
class JapaneseNumber:
    e164: str
    national: str
    kind: str


_SEPARATORS = re.compile(r"[\s\-‐‑‒–—―−ーｰ.()]")
_REFUSED_PREFIXES = {
    "020": "020 numbers (M2M and pagers) are not supported",
    "060": "060 numbers are not assigned",
    "0570": "0570 (navi dial) numbers are not supported",
    "0170": "0170 numbers are not supported",
    "0180": "0180 numbers are not supported",
    "0990": "0990 (premium rate) numbers are not supported",
    "0910": "0910 numbers are not supported",
}


def _national(text: str) -> str:
    """Reduce any accepted spelling to the national form with a leading 0."""
    s = unicodedata.normalize("NFKC", text).strip()
    s = s.replace("(0)", "")
    s = _SEPARATORS.sub("", s)
    if not s:
        raise InvalidNumber("empty number")
    if s.startswith("+"):
        if not s[1:].isdigit():
            raise InvalidNumber(f"{text!r} contains characters other than digits")
        if not s.startswith("+81"):
            raise InvalidNumber(f"{text!r} is not a Japanese number (+81)")
        rest = s[3:]
    elif s.startswith("0081"):
        rest = s[4:]
    elif s.startswith("01081"):
        rest = s[5:]
    else:
        if not s.isdigit():
            raise InvalidNumber(f"{text!r} contains characters other than digits")
        if not s.startswith("0"):
            raise InvalidNumber(f"{text!r} must start with 0 (national form) or +81 (E.164 form)")
        return s
    if not rest.isdigit():
        raise InvalidNumber(f"{text!r} contains characters other than digits")
    if rest.startswith("0"):
        raise InvalidNumber(f"{text!r}: after +81 the national number drops its leading 0")
    return "0" + rest


def parse(text: str) -> JapaneseNumber:
    """Validate *text* and return its E.164 and national forms and its kind."""
    n = _national(text)
    if n.startswith("00"):
        raise InvalidNumber(f"{text!r}: 00 prefixes (carrier or international) are not numbers")
    for prefix, reason in _REFUSED_PREFIXES.items():
        if n.startswith(prefix):
            raise InvalidNumber(f"{text!r}: {reason}")
    if n.startswith("0120"):
        kind, length = "freedial", 10
    elif n.startswith("0800"):
        kind, length = "freedial", 11
    elif n[:3] in {"070", "080", "090"}:
        kind, length = "mobile", 11
    elif n.startswith("050"):
        kind, length = "ip", 11
    else:
        kind, length = "fixed", 10
    if len(n) != length:
        raise InvalidNumber(
            f"{text!r}: a {kind} number has {length} digits in national form, got {len(n)}"
        )
    if kind in {"mobile", "ip"} and n[3] == "0":
        raise InvalidNumber(f"{text!r}: {n[:3]}-0 numbers are not assigned")
    return JapaneseNumber(e164="+81" + n[1:], national=n, kind=kind)


def normalize(text: str) -> str:
    """The E.164 form of a Japanese number, or `InvalidNumber`."""
    return parse(text).e164


def to_national(e164: str) -> str:
    """``+81312345678`` → ``0312345678`` (for display and for dialling the trunk)."""
    return parse(e164).national


def normalize_prefix(text: str) -> str:
    """A destination prefix such as ``03``, ``0120`` or ``+8190`` in E.164 form (``+813``).

    Prefixes are compared against normalised destinations, so they are normalised the same way
    but without the length checks a full number gets.
    """
    s = _SEPARATORS.sub("", unicodedata.normalize("NFKC", text).strip())
    if s.startswith("+81") and s[3:].isdigit() and not s[3:].startswith("0"):
        return s
    if s.startswith("0") and s.isdigit() and not s.startswith("00"):
        return "+81" + s[1:]
    raise InvalidNumber(f"{text!r}: a prefix starts with 0 (national) or +81 (E.164)")
