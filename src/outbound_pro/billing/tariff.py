"""The fee table (別表 料金表) as versioned data.

Prices, tax rates and the numbers in the rules are data so that a price change (Art. 16) or a
new consumption-tax rate is a new version or a new table row, not a code change. The packaged
``tariff.json`` is a verbatim copy of the table in the service terms; later versions carry an
effective date and the date they were announced, and a version announced less than the
notice period (30 days) before it takes effect is refused, because Art. 16 only allows a
price change "by notice at least 30 days before".

What stays in code is meaning the table cannot express: which contract-level fees follow which
unit (predictive server follows predictive booths, the SIP base fee follows SIP devices) and
which units are options on another unit.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
from decimal import Decimal
from importlib import resources
from typing import Annotated

import msgspec

from outbound_pro.billing.errors import TariffError

#: The terms took effect on 平成27年7月1日 (附則); the packaged table applies from then on.
TERMS_IN_FORCE = dt.date(2015, 7, 1)

#: Contract-level units and the unit whose presence makes them chargeable (None: the contract
#: itself). Rule 2 of issue 5: server management while the contract is in service; predictive
#: server while at least one booth has predictive calling; SIP base while a SIP device exists.
CONTRACT_UNITS: dict[str, str | None] = {
    "contract": None,
    "contract_with_predictive": "predictive_booth",
    "contract_with_sip": "sip_device",
}

#: Options priced "per booth" cannot outnumber booths.
AT_MOST_PARENT: dict[str, str] = {"extended_booth": "booth", "predictive_booth": "booth"}

#: Numbers are set "on a device" (1の端末に設定する電気通信番号ごと): they need a device.
NEEDS_PARENT: dict[str, str] = {"sip_number": "sip_device"}

#: English labels shown beside the terms' Japanese ones. The packaged JSON stays a verbatim
#: copy of the terms' table, so the translations live here; an unknown code shows its code.
LABELS_EN: dict[str, str] = {
    "initial_setup": "Initial setup (per contract)",
    "line_setup": "Line setup (per booth)",
    "sub_admin_setup": "Sub-admin ID setup",
    "affiliation_setup": "Affiliation setup",
    "predictive_setup": "Predictive call setup (per booth)",
    "sip_channel_setup": "SIP terminal channel setup (per device)",
    "sip_account_setup": "SIP terminal account setup (per number)",
    "booth": "Booth fee",
    "server_management": "Server management",
    "sub_admin": "Sub-admin ID",
    "affiliation": "Affiliation",
    "retention_extension": "Recording retention extension (per booth)",
    "predictive": "Predictive call (per booth)",
    "predictive_server": "Predictive call server management",
    "sip_account_base": "SIP terminal account base fee",
    "sip_channel": "SIP terminal channel (per device)",
    "sip_account": "SIP terminal account (per number)",
    "sip_recording": "SIP terminal call recording (per device)",
}

Yen = Annotated[int, msgspec.Meta(ge=0)]
Positive = Annotated[int, msgspec.Meta(gt=0)]


class FeeItem(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One row of the fee table: a price in yen (tax excluded) per ``unit``."""

    code: str
    unit: str
    yen: Yen
    ja: str
    minimum_months: Positive | None = None

    @property
    def en(self) -> str:
        return LABELS_EN.get(self.code, self.code)


class TaxRate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Consumption tax ``rate`` in force from ``start`` until the next row's start."""

    start: dt.date = msgspec.field(name="from")
    rate: Decimal


class TariffRules(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The numbers in the terms' rules. Prose fields are kept so that a table whose wording
    changed is still read strictly (an unknown key is an error, not silently ignored)."""

    start_month_monthly_fees: str
    end_month_monthly_fees: str
    booth_minimum_months: Positive
    booth_minimum_counts_from: str
    early_termination: str
    consumption_tax: tuple[TaxRate, ...]
    rounding: str
    late_interest_rate_per_year: Decimal
    late_interest_days: str
    late_interest_grace_days: Annotated[int, msgspec.Meta(ge=0)]
    evasion_surcharge_multiple: Annotated[int, msgspec.Meta(ge=0)]
    outage_credit_unit_hours: Positive
    price_change_notice_days: Annotated[int, msgspec.Meta(ge=0)]
    recording_retention_days: Positive
    recording_retention_extension_days: Positive
    liability_cap_months_paid: Positive
    # Issue 5 decisions the terms leave open; defaults so the verbatim table still decodes.
    outage_credit_days_per_month: Positive = 30
    late_interest_days_per_year: Positive = 365


class TariffVersion(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One version of the fee table. ``effective``/``announced`` are absent only in the
    packaged base table, which applies from ``TERMS_IN_FORCE``."""

    currency: str
    tax_excluded: bool
    source: str
    initial: tuple[FeeItem, ...]
    monthly: tuple[FeeItem, ...]
    rules: TariffRules
    effective: dt.date | None = None
    announced: dt.date | None = None

    def monthly_item(self, code: str) -> FeeItem:
        for item in self.monthly:
            if item.code == code:
                return item
        raise TariffError(f"fee table has no monthly fee {code!r}")


def _check_version(version: TariffVersion) -> None:
    """Refuse a table the engine would misread, naming the field to fix."""
    if version.currency != "JPY":
        raise TariffError(f"currency must be JPY, not {version.currency!r}")
    if not version.tax_excluded:
        raise TariffError("tax_excluded must be true: prices are tax excluded (税別)")
    codes = [item.code for item in (*version.initial, *version.monthly)]
    duplicates = sorted({c for c in codes if codes.count(c) > 1})
    if duplicates:
        raise TariffError(f"fee codes appear twice: {', '.join(duplicates)}")
    for item in (*version.initial, *version.monthly):
        if item.unit in CONTRACT_UNITS and item.minimum_months is not None:
            raise TariffError(f"{item.code}: minimum_months only applies to per-unit fees")
    booth = [i for i in version.monthly if i.unit == "booth" and i.minimum_months is not None]
    if booth and booth[0].minimum_months != version.rules.booth_minimum_months:
        raise TariffError(
            f"booth minimum_months {booth[0].minimum_months} disagrees with "
            f"rules.booth_minimum_months {version.rules.booth_minimum_months}; make them equal"
        )
    taxes = version.rules.consumption_tax
    if not taxes:
        raise TariffError("rules.consumption_tax needs at least one {from, rate} row")
    for before, after in itertools.pairwise(taxes):
        if after.start <= before.start:
            raise TariffError("rules.consumption_tax rows must be in increasing 'from' order")
    for row in taxes:
        if not Decimal(0) <= row.rate < Decimal(1):
            raise TariffError(f"tax rate {row.rate} from {row.start} must be a fraction, e.g. 0.10")
    if not Decimal(0) <= version.rules.late_interest_rate_per_year < Decimal(1):
        raise TariffError("rules.late_interest_rate_per_year must be a fraction, e.g. 0.145")


def _effective(version: TariffVersion) -> dt.date:
    if version.effective is None:
        raise TariffError("every version in a tariff needs an 'effective' date")
    return version.effective


def decode_version(data: bytes, *, source: str = "tariff") -> TariffVersion:
    """Decode one version from JSON in the shape of tariff.json."""
    try:
        version = msgspec.json.decode(data, type=TariffVersion)
    except msgspec.DecodeError as exc:
        raise TariffError(f"{source}: {exc}") from exc
    try:
        _check_version(version)
    except TariffError as exc:
        raise TariffError(f"{source}: {exc}") from exc
    return version


class Tariff(msgspec.Struct, frozen=True):
    """All versions of the fee table, oldest first. Use ``load_tariff`` and ``with_version``."""

    versions: tuple[TariffVersion, ...]

    def __post_init__(self) -> None:
        if not self.versions:
            raise TariffError("a tariff needs at least one version")
        for version in self.versions:
            _effective(version)

    def version_at(self, day: dt.date) -> TariffVersion:
        """The version in force on *day*."""
        current: TariffVersion | None = None
        for version in self.versions:
            if version.effective is not None and version.effective <= day:
                current = version
        if current is None:
            raise TariffError(
                f"no fee table is in force on {day}; the first applies from "
                f"{self.versions[0].effective}"
            )
        return current

    def tax_rate_at(self, day: dt.date) -> Decimal:
        """The consumption-tax rate in force on *day*, from the newest version's table (tax
        rates are law, not price, so the newest table knows every row)."""
        rate: Decimal | None = None
        for row in self.versions[-1].rules.consumption_tax:
            if row.start <= day:
                rate = row.rate
        if rate is None:
            first = self.versions[-1].rules.consumption_tax[0].start
            raise TariffError(
                f"no consumption-tax rate is in force on {day}; the table starts {first}. "
                "Add a row to rules.consumption_tax for earlier dates."
            )
        return rate

    @property
    def units(self) -> frozenset[str]:
        """Units usage can count: every unit priced in any version, except contract level."""
        return frozenset(
            item.unit
            for version in self.versions
            for item in (*version.initial, *version.monthly)
            if item.unit not in CONTRACT_UNITS
        )

    def with_version(self, version: TariffVersion) -> Tariff:
        """Add a price change, refusing it when its notice is shorter than Art. 16 allows."""
        if version.effective is None or version.announced is None:
            raise TariffError(
                "a new fee-table version needs both 'effective' and 'announced' dates (Art. 16)"
            )
        _check_version(version)
        if any(v.effective == version.effective for v in self.versions):
            raise TariffError(f"a fee-table version already takes effect on {version.effective}")
        if version.effective <= _effective(self.versions[0]):
            raise TariffError(
                f"effective date {version.effective} is not after the first version's "
                f"{_effective(self.versions[0])}"
            )
        notice_days = self.version_at(version.announced).rules.price_change_notice_days
        given = (version.effective - version.announced).days
        if given < notice_days:
            earliest = version.announced + dt.timedelta(days=notice_days)
            raise TariffError(
                f"version effective {version.effective} was announced {version.announced}, "
                f"{given} days before; Art. 16 needs at least {notice_days} days' notice, so it "
                f"can take effect on {earliest} at the earliest"
            )
        versions = sorted((*self.versions, version), key=_effective)
        return Tariff(tuple(versions))


@functools.cache
def packaged_tariff() -> Tariff:
    """The fee table shipped in the package (read once; Tariff is immutable)."""
    data = resources.files("outbound_pro.billing").joinpath("tariff.json").read_bytes()
    base = decode_version(data, source="packaged tariff.json")
    return Tariff((msgspec.structs.replace(base, effective=TERMS_IN_FORCE),))


def load_tariff(*extra_versions: TariffVersion) -> Tariff:
    """The packaged fee table, plus *extra_versions* (price changes) checked against Art. 16."""
    tariff = packaged_tariff()
    for version in extra_versions:
        tariff = tariff.with_version(version)
    return tariff
