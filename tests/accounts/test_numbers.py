from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outbound_pro.accounts import numbers
from outbound_pro.accounts.numbers import InvalidNumber


@pytest.mark.parametrize(
    ("text", "e164", "kind"),
    [
        ("0312345678", "+81312345678", "fixed"),
        ("03-1234-5678", "+81312345678", "fixed"),
        ("(03) 1234 5678", "+81312345678", "fixed"),
        ("０３－１２３４－５６７８", "+81312345678", "fixed"),  # full-width input
        ("+81 3-1234-5678", "+81312345678", "fixed"),
        ("+81 (0)3 1234 5678", "+81312345678", "fixed"),
        ("0081312345678", "+81312345678", "fixed"),
        ("010 81 3 1234 5678", "+81312345678", "fixed"),
        ("011-123-4567", "+81111234567", "fixed"),  # Sapporo
        ("0123-45-6789", "+81123456789", "fixed"),  # 012x area code, not 0120
        ("022-123-4567", "+81221234567", "fixed"),  # 02x fixed exists (Sendai)
        ("052-123-4567", "+81521234567", "fixed"),
        ("06-1234-5678", "+81612345678", "fixed"),
        ("075-123-4567", "+81751234567", "fixed"),
        ("092-123-4567", "+81921234567", "fixed"),
        ("050-1234-5678", "+815012345678", "ip"),
        ("0120-123-456", "+81120123456", "freedial"),
        ("0800-123-4567", "+818001234567", "freedial"),
        ("070-1234-5678", "+817012345678", "mobile"),
        ("080-1234-5678", "+818012345678", "mobile"),
        ("090-1234-5678", "+819012345678", "mobile"),
        ("+819012345678", "+819012345678", "mobile"),
    ],
)
def test_valid_numbers_normalise_to_e164(text: str, e164: str, kind: str) -> None:
    parsed = numbers.parse(text)
    assert parsed.e164 == e164
    assert parsed.kind == kind
    assert numbers.normalize(text) == e164
    assert numbers.to_national(e164) == parsed.national


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("031234567", "10 digits"),  # fixed too short
        ("03123456789", "10 digits"),  # fixed too long
        ("090-1234-567", "11 digits"),  # mobile too short
        ("090-1234-56789", "11 digits"),
        ("090-0123-4567", "not assigned"),
        ("050-0123-4567", "not assigned"),
        ("0120-123-4567", "10 digits"),  # 0120 is 10 digits
        ("0800-123-456", "11 digits"),  # 0800 is 11 digits
        ("020-1234-5678", "020"),
        ("060-1234-5678", "060"),
        ("0570-123-456", "0570"),
        ("0990-123-456", "0990"),
        ("0180-123-456", "0180"),
        ("001-1-212-555-1234", "00"),
        ("+1 212 555 1234", "not a Japanese"),
        ("+44 20 7946 0958", "not a Japanese"),
        ("+81 03 1234 5678", "drops its leading 0"),
        ("3-1234-5678", "must start with 0"),
        ("110", "must start with 0"),
        ("03-1234-567a", "other than digits"),
        ("+81-3-1234-567x", "other than digits"),
    ],
)
def test_invalid_numbers_are_refused_with_a_reason(text: str, why: str) -> None:
    with pytest.raises(InvalidNumber, match=why):
        numbers.normalize(text)


@pytest.mark.parametrize(
    ("prefix", "e164"),
    [("03", "+813"), ("0120", "+81120"), ("0", "+81"), ("+8190", "+8190"), ("09-0", "+8190")],
)
def test_prefixes(prefix: str, e164: str) -> None:
    assert numbers.normalize_prefix(prefix) == e164


@pytest.mark.parametrize("prefix", ["", "3", "+1", "00", "+810", "abc"])
def test_bad_prefixes(prefix: str) -> None:
    with pytest.raises(InvalidNumber):
        numbers.normalize_prefix(prefix)


@given(
    st.sampled_from(["3", "6", "11", "52", "75", "92"]),
    st.integers(2, 9),
    st.integers(0, 10**7 - 1),
)
def test_normalisation_round_trips(area: str, first: int, rest: int) -> None:
    # Local numbers start with 2-9 (0 and 1 would clash with 060, 0120 ...).
    national = ("0" + area + str(first) + str(rest).zfill(8 - len(area)))[:10]
    e164 = numbers.normalize(national)
    assert e164 == "+81" + national[1:]
    assert numbers.normalize(e164) == e164
    assert numbers.to_national(e164) == national


@given(st.text(max_size=20))
def test_arbitrary_text_never_crashes(text: str) -> None:
    try:
        result = numbers.normalize(text)
    except InvalidNumber:
        return
    assert result.startswith("+81") and result[1:].isdigit()
