"""The packaged fee table against the terms (別表 2-1, 2-2), and price-change versions (Art. 16)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec
import pytest

from outbound_pro.billing import (
    TariffError,
    TariffVersion,
    decode_version,
    load_tariff,
    packaged_tariff,
)
from outbound_pro.billing.tariff import TERMS_IN_FORCE, TaxRate

from .factories import amounts, d, full, invoice, quantities, usage


def test_packaged_initial_fees_are_the_terms_table_2_1():
    base = packaged_tariff().versions[0]
    # 2-1 初期費用: (1) 30,000 per contract ... (7) 2,000 per number on a device.
    assert [(i.code, i.unit, i.yen) for i in base.initial] == [
        ("initial_setup", "contract", 30000),
        ("line_setup", "booth", 5000),
        ("sub_admin_setup", "sub_admin_id", 10000),
        ("affiliation_setup", "affiliation", 30000),
        ("predictive_setup", "predictive_booth", 5000),
        ("sip_channel_setup", "sip_device", 3000),
        ("sip_account_setup", "sip_number", 2000),
    ]


def test_packaged_monthly_fees_are_the_terms_table_2_2():
    base = packaged_tariff().versions[0]
    # 2-2 月額利用料: 基本利用料 (1) 8,000 per booth, (2) 3,000 per contract; 付加利用料 (1)-(9).
    assert [(i.code, i.unit, i.yen) for i in base.monthly] == [
        ("booth", "booth", 8000),
        ("server_management", "contract", 3000),
        ("sub_admin", "sub_admin_id", 5000),
        ("affiliation", "affiliation", 15000),
        ("retention_extension", "extended_booth", 500),
        ("predictive", "predictive_booth", 3500),
        ("predictive_server", "contract_with_predictive", 15000),
        ("sip_account_base", "contract_with_sip", 500),
        ("sip_channel", "sip_device", 800),
        ("sip_account", "sip_number", 200),
        ("sip_recording", "sip_device", 500),
    ]
    # 1(2): only the booth fee has a minimum period, of 6 months.
    assert {i.code: i.minimum_months for i in base.monthly if i.minimum_months} == {"booth": 6}


def test_packaged_rules_numbers():
    rules = packaged_tariff().versions[0].rules
    assert rules.consumption_tax == (TaxRate(d("2019-10-01"), Decimal("0.10")),)
    assert rules.late_interest_rate_per_year == Decimal("0.145")  # Art. 18: 年14.5%
    assert rules.late_interest_grace_days == 10  # Art. 18 ただし書
    assert rules.evasion_surcharge_multiple == 2  # Art. 17: 2倍
    assert rules.price_change_notice_days == 30  # Art. 16: 30日前まで
    assert rules.liability_cap_months_paid == 3  # Art. 29-6: 3ヶ月
    assert rules.outage_credit_unit_hours == 24  # Art. 29-2: 24時間ごと
    assert packaged_tariff().versions[0].effective == TERMS_IN_FORCE == dt.date(2015, 7, 1)


def _version(effective: str, announced: str, booth: int = 9000) -> TariffVersion:
    base = packaged_tariff().versions[0]
    monthly = tuple(
        msgspec.structs.replace(i, yen=booth) if i.code == "booth" else i for i in base.monthly
    )
    initial = tuple(
        msgspec.structs.replace(i, yen=6000) if i.code == "line_setup" else i for i in base.initial
    )
    return msgspec.structs.replace(
        base, effective=d(effective), announced=d(announced), monthly=monthly, initial=initial
    )


def test_price_change_with_exactly_30_days_notice_is_accepted():
    # Announced 2026-08-02, effective 2026-09-01: 2026-09-01 - 2026-08-02 = 30 days.
    tariff = load_tariff(_version("2026-09-01", "2026-08-02"))
    assert tariff.version_at(d("2026-08-31")).monthly_item("booth").yen == 8000
    assert tariff.version_at(d("2026-09-01")).monthly_item("booth").yen == 9000


def test_price_change_with_29_days_notice_is_refused():
    # Announced 2026-08-03, effective 2026-09-01: 29 days < 30 (Art. 16) -> refused, and the
    # message names the earliest allowed date 2026-08-03 + 30 days = 2026-09-02.
    with pytest.raises(TariffError, match=r"29 days.*at least 30.*2026-09-02"):
        load_tariff(_version("2026-09-01", "2026-08-03"))


def test_version_without_dates_is_refused():
    base = packaged_tariff().versions[0]
    with pytest.raises(TariffError, match="'effective' and 'announced'"):
        load_tariff(msgspec.structs.replace(base, effective=None, announced=None))


def test_price_change_applies_from_the_month_it_is_in_force():
    # 5 booths since 2026-04-10; booth 8,000 -> 9,000 from 2026-09-01 (announced 2026-07-15).
    tariff = load_tariff(_version("2026-09-01", "2026-07-15"))
    u = usage("2026-04-10", ("2026-04-10", "booth", 5), ("2026-09-10", "booth", 1))
    assert amounts(invoice(u, "2026-08", tariff=tariff))["booth"] == 5 * 8000  # 40,000
    sep = invoice(u, "2026-09", tariff=tariff)
    assert amounts(sep)["booth"] == 5 * 9000  # 45,000 (the booth added 09-10 is free)
    # Initial fees use the price on the day the unit was added: 6,000 from 2026-09-01.
    assert amounts(sep)["line_setup"] == 1 * 6000


def test_price_change_mid_month_applies_from_the_next_month_for_monthly_fees():
    # Effective 2026-09-15: September's monthly fees use the version of 2026-09-01 (8,000);
    # a booth added 09-20 pays the new line setup 6,000, one added 09-10 the old 5,000.
    tariff = load_tariff(_version("2026-09-15", "2026-08-01"))
    u = usage(
        "2026-04-10",
        ("2026-04-10", "booth", 5),
        ("2026-09-10", "booth", 1),
        ("2026-09-20", "booth", 1),
    )
    sep = invoice(u, "2026-09", tariff=tariff)
    assert amounts(sep)["booth"] == 5 * 8000
    setup = [(line.quantity, line.unit_price) for line in sep.lines if line.code == "line_setup"]
    assert setup == [(1, 5000), (1, 6000)]
    assert amounts(invoice(u, "2026-10", tariff=tariff))["booth"] == 7 * 9000


def test_new_tax_rate_is_a_table_row():
    # A hypothetical 12% from 2027-04-01 is one more row; March stays at 10%.
    base = packaged_tariff().versions[0]
    rules = msgspec.structs.replace(
        base.rules,
        consumption_tax=(
            TaxRate(d("2019-10-01"), Decimal("0.10")),
            TaxRate(d("2027-04-01"), Decimal("0.12")),
        ),
    )
    version = msgspec.structs.replace(
        base, effective=d("2027-03-01"), announced=d("2027-01-01"), rules=rules
    )
    tariff = load_tariff(version)
    u = usage("2026-04-10", ("2026-04-10", "booth", 1))
    march = invoice(u, "2027-03", tariff=tariff)
    april = invoice(u, "2027-04", tariff=tariff)
    # Both months: booth 8,000 + server management 3,000 = 11,000 taxable.
    assert (march.tax, march.taxes[0].rate) == (1100, Decimal("0.10"))  # 11,000 x 10%
    assert (april.tax, april.taxes[0].rate) == (1320, Decimal("0.12"))  # 11,000 x 12%


def test_month_before_any_tax_rate_is_an_error():
    u = usage("2019-04-01", ("2019-04-01", "booth", 1))
    with pytest.raises(TariffError, match="no consumption-tax rate is in force on 2019-05-01"):
        invoice(u, "2019-05")


def test_decode_version_refuses_unknown_keys_and_bad_tables():
    base = packaged_tariff().versions[0]
    typo = {**msgspec.to_builtins(base), "efective": "2026-01-01"}
    with pytest.raises(TariffError, match=r"new\.json: .*unknown field `efective`"):
        decode_version(msgspec.json.encode(typo), source="new.json")
    twice = msgspec.structs.replace(base, monthly=(*base.monthly, base.monthly[0]))
    with pytest.raises(TariffError, match="codes appear twice: booth"):
        decode_version(msgspec.json.encode(twice), source="new.json")


def test_full_set_quantities_come_from_the_table_units():
    # Cross-check that every unit of the table is billed: May of the full set has 11 lines.
    assert quantities(invoice(full(), "2026-05")) == {
        "booth": 5,
        "server_management": 1,
        "sub_admin": 2,
        "affiliation": 1,
        "retention_extension": 2,
        "predictive": 3,
        "predictive_server": 1,
        "sip_account_base": 1,
        "sip_channel": 2,
        "sip_account": 3,
        "sip_recording": 2,
    }
