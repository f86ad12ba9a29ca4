"""Billing months are Japan-time calendar months."""

from __future__ import annotations

import datetime as dt

import pytest

from outbound_pro.billing import BillingMonth
from outbound_pro.billing.months import add_months, tokyo_date


def test_parse_and_arithmetic():
    month = BillingMonth.parse("2026-12")
    assert (str(month), month.first_day, month.last_day) == (
        "2026-12",
        dt.date(2026, 12, 1),
        dt.date(2026, 12, 31),
    )
    assert str(month.shift(2)) == "2027-02" and month.shift(2).last_day.day == 28
    assert BillingMonth.parse("2028-02").last_day.day == 29  # leap year
    assert month.shift(-12) < month


@pytest.mark.parametrize("text", ["2026-7", "2026-00", "2026-13", "July", "0000-01"])
def test_bad_months_say_the_expected_shape(text):
    with pytest.raises(ValueError, match="write it as YYYY-MM"):
        BillingMonth.parse(text)


def test_tokyo_date_converts_and_refuses_naive_times():
    # 15:00 UTC is midnight of the next day in Tokyo (UTC+9, no daylight saving).
    assert tokyo_date(dt.datetime(2026, 7, 31, 15, 0, tzinfo=dt.UTC)) == dt.date(2026, 8, 1)
    assert tokyo_date(dt.datetime(2026, 7, 31, 14, 59, tzinfo=dt.UTC)) == dt.date(2026, 7, 31)
    with pytest.raises(ValueError, match="no time zone"):
        tokyo_date(dt.datetime(2026, 7, 31, 15, 0))


def test_add_months_clamps_to_month_end():
    assert add_months(dt.date(2026, 5, 31), -3) == dt.date(2026, 2, 28)
    assert add_months(dt.date(2026, 1, 31), 1) == dt.date(2026, 2, 28)
    assert add_months(dt.date(2026, 3, 15), -3) == dt.date(2025, 12, 15)
