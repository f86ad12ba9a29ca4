"""Billing months in Asia/Tokyo.

The fee table charges by 料金月 (billing month) and the provider operates in Japan, so every
month boundary is midnight Japan time, whatever zone the server or a timestamp is in. Dates
in usage data are already Japanese calendar dates; timestamps (outages) are converted with
``tokyo_date`` before they are placed in a month.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

TOKYO = ZoneInfo("Asia/Tokyo")

_MONTH_RE = re.compile(r"(\d{4})-(\d{2})")


@dataclass(frozen=True, order=True)
class BillingMonth:
    """One 料金月: a calendar month in Japan time. Ordered, hashable, printed as YYYY-MM."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12 or not 1 <= self.year <= 9998:
            raise ValueError(f"no such month: {self.year:04d}-{self.month:02d}")

    @classmethod
    def parse(cls, text: str) -> BillingMonth:
        """Parse ``YYYY-MM``; the error says the expected shape because operators type this."""
        m = _MONTH_RE.fullmatch(text.strip())
        if m is None or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) == 0:
            raise ValueError(
                f"{text!r} is not a month; write it as YYYY-MM with MM 01-12, e.g. 2026-07"
            )
        return cls(int(m.group(1)), int(m.group(2)))

    @classmethod
    def of(cls, day: dt.date) -> BillingMonth:
        return cls(day.year, day.month)

    @property
    def index(self) -> int:
        """Months since year 0: subtracting two indexes counts whole billing months."""
        return self.year * 12 + self.month - 1

    @classmethod
    def from_index(cls, index: int) -> BillingMonth:
        return cls(index // 12, index % 12 + 1)

    def shift(self, months: int) -> BillingMonth:
        return BillingMonth.from_index(self.index + months)

    @property
    def first_day(self) -> dt.date:
        return dt.date(self.year, self.month, 1)

    @property
    def last_day(self) -> dt.date:
        return dt.date(self.year, self.month, calendar.monthrange(self.year, self.month)[1])

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def tokyo_date(moment: dt.datetime) -> dt.date:
    """The Japanese calendar date of an aware timestamp (naive ones are refused upstream)."""
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {moment.isoformat()} has no time zone")
    return moment.astimezone(TOKYO).date()


def add_months(day: dt.date, months: int) -> dt.date:
    """Same day *months* later (or earlier), clamped to the month's end (May 31 - 3 = Feb 28)."""
    target = BillingMonth.of(day).shift(months)
    return dt.date(target.year, target.month, min(day.day, target.last_day.day))
