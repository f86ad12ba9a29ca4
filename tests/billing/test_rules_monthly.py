"""Worked examples for issue 5 rules 1-3: initial fees, monthly fees per unit, minimum period.

The contract in most examples ("full set") starts 2026-04-10 with 5 booths, 2 sub-admin IDs,
1 affiliation, 2 booths with extended retention, 3 predictive booths, 2 SIP devices and
3 SIP numbers. Prices are the terms' fee table (別表 2-1, 2-2), tax excluded.
"""

from __future__ import annotations

import pytest

from outbound_pro.billing import BillingError

from .factories import amounts, full, invoice, quantities, usage


# Rule 1: initial fees in the month the unit is added ------------------------------------------
def test_start_month_charges_initial_fees_and_no_monthly_fee():
    april = invoice(full(), "2026-04")
    assert amounts(april) == {
        "initial_setup": 30000,  # 1 contract x 30,000
        "line_setup": 25000,  # 5 booths x 5,000
        "sub_admin_setup": 20000,  # 2 IDs x 10,000
        "affiliation_setup": 30000,  # 1 x 30,000
        "predictive_setup": 15000,  # 3 booths x 5,000
        "sip_channel_setup": 6000,  # 2 devices x 3,000
        "sip_account_setup": 6000,  # 3 numbers x 2,000
    }  # no monthly line: 1(ウ)(ア) the start month's monthly fees are free
    # 30,000 + 25,000 + 20,000 + 30,000 + 15,000 + 6,000 + 6,000 = 132,000
    assert april.subtotal == 132000
    assert april.tax == 13200  # 132,000 x 10%
    assert april.total == 145200


def test_unit_added_later_pays_its_setup_in_its_month_only():
    u = full(("2026-06-15", "booth", 2))
    june = invoice(u, "2026-06")
    assert amounts(june)["line_setup"] == 10000  # 2 booths x 5,000
    assert "initial_setup" not in amounts(june)  # the contract setup was April's
    assert "line_setup" not in amounts(invoice(u, "2026-07"))


def test_re_adding_a_unit_pays_its_setup_again():
    u = full(("2026-06-10", "sub_admin_id", -1), ("2026-07-01", "sub_admin_id", 1))
    assert amounts(invoice(u, "2026-07"))["sub_admin_setup"] == 10000  # 1 x 10,000


# Rule 2: monthly fees per unit, start month free, end month full ------------------------------
def test_first_full_month_charges_every_monthly_fee():
    may = invoice(full(), "2026-05")
    assert amounts(may) == {
        "booth": 40000,  # 5 x 8,000
        "server_management": 3000,  # 1 contract x 3,000
        "sub_admin": 10000,  # 2 x 5,000
        "affiliation": 15000,  # 1 x 15,000
        "retention_extension": 1000,  # 2 x 500
        "predictive": 10500,  # 3 x 3,500
        "predictive_server": 15000,  # 1 contract x 15,000 (not per predictive booth)
        "sip_account_base": 500,  # 1 contract x 500
        "sip_channel": 1600,  # 2 devices x 800
        "sip_account": 600,  # 3 numbers x 200
        "sip_recording": 1000,  # 2 devices x 500
    }
    # 40,000 + 3,000 + 10,000 + 15,000 + 1,000 + 10,500 + 15,000 + 500 + 1,600 + 600 + 1,000
    assert may.subtotal == 98200
    assert may.tax == 9820  # 98,200 x 10%
    assert may.total == 108020


def test_unit_added_mid_contract_is_free_in_its_own_start_month():
    u = full(("2026-06-15", "booth", 2))
    assert quantities(invoice(u, "2026-06"))["booth"] == 5  # the 2 new booths: start month
    assert quantities(invoice(u, "2026-07"))["booth"] == 7  # 5 + 2
    assert "2 more started in 2026-06" in next(
        line.note for line in invoice(u, "2026-06").lines if line.code == "booth"
    )


def test_unit_is_charged_in_full_in_the_month_it_ends():
    u = full(("2026-06-03", "sub_admin_id", -1))
    assert quantities(invoice(u, "2026-06"))["sub_admin"] == 2  # ended 06-03: June in full
    assert quantities(invoice(u, "2026-07"))["sub_admin"] == 1


def test_unit_that_starts_and_ends_in_one_month_pays_no_monthly_fee():
    u = full(("2026-06-05", "affiliation", 1), ("2026-06-20", "affiliation", -1))
    june = invoice(u, "2026-06")
    assert quantities(june)["affiliation"] == 1  # the April one only
    assert amounts(june)["affiliation_setup"] == 30000  # but the setup of the added one


def test_predictive_server_follows_the_first_and_last_predictive_booth():
    u = usage(
        "2026-04-10",
        ("2026-04-10", "booth", 5),
        ("2026-06-03", "predictive_booth", 3),
        ("2026-08-20", "predictive_booth", -3),
    )
    assert "predictive_server" not in amounts(invoice(u, "2026-06"))  # started in June: free
    assert quantities(invoice(u, "2026-07"))["predictive_server"] == 1  # 15,000 once, not x3
    assert amounts(invoice(u, "2026-08"))["predictive_server"] == 15000  # ends in Aug: full
    assert "predictive_server" not in amounts(invoice(u, "2026-09"))


def test_sip_base_fee_while_a_device_exists():
    u = usage("2026-04-10", ("2026-04-10", "booth", 1), ("2026-09-01", "sip_device", 1))
    assert "sip_account_base" not in amounts(invoice(u, "2026-09"))  # device's start month
    assert amounts(invoice(u, "2026-10"))["sip_account_base"] == 500


def test_contract_end_month_is_charged_in_full_and_nothing_after():
    u = usage("2026-04-10", ("2026-04-10", "booth", 1), end="2027-01-15")
    assert amounts(invoice(u, "2027-01"))["server_management"] == 3000
    assert amounts(invoice(u, "2027-01"))["booth"] == 8000
    with pytest.raises(BillingError, match="2027-02 is outside contract C-1's service"):
        invoice(u, "2027-02")
    with pytest.raises(BillingError, match="2026-03 is outside"):
        invoice(u, "2026-03")


# Rule 3: booth minimum period --------------------------------------------------------------------
def test_booth_removed_inside_minimum_period_pays_the_rest():
    # Started 2026-04-10: minimum period = May..Oct (6 months after the start month).
    # Removed 2026-06-03: June is charged as the end month; Jul, Aug, Sep, Oct remain = 4.
    u = full(("2026-06-03", "booth", -1))
    june = invoice(u, "2026-06")
    assert quantities(june)["booth"] == 5
    line = next(line for line in june.lines if line.code == "booth_minimum_period")
    assert (line.quantity, line.unit_price, line.amount) == (4, 8000, 32000)  # 4 x 8,000
    assert line.tax_rate is not None  # taxable like the monthly fee it stands for
    assert june.taxes[0].taxable_subtotal == 98200 + 32000  # May's fees + 32,000
    assert june.tax == 13020  # 130,200 x 10%


def test_booth_removed_in_the_last_month_of_the_period_pays_nothing_more():
    # Removed in October, the period's last month: October itself is charged as end month.
    assert "booth_minimum_period" not in amounts(
        invoice(full(("2026-10-01", "booth", -1)), "2026-10")
    )
    # Removed in September: October remains = 1 x 8,000.
    assert (
        amounts(invoice(full(("2026-09-30", "booth", -1)), "2026-09"))["booth_minimum_period"]
        == 8000
    )


def test_contract_ended_inside_minimum_period_charges_every_booth():
    # Contract ends 2026-07-31 with 5 booths from April: each has Aug, Sep, Oct left = 3.
    july = invoice(full(end="2026-07-31"), "2026-07")
    assert quantities(july)["booth_minimum_period"] == 15  # 5 booths x 3 months
    assert amounts(july)["booth_minimum_period"] == 120000  # 15 x 8,000
    assert amounts(july)["booth"] == 40000  # July itself, end month, in full


def test_each_booth_has_its_own_minimum_period():
    # April booths' periods end in October; the booth added 2026-08-20 has Sep..Feb.
    # Contract ends 2026-12-31: only the August booth has Jan, Feb 2027 left = 2 x 8,000.
    u = usage(
        "2026-04-10", ("2026-04-10", "booth", 5), ("2026-08-20", "booth", 1), end="2026-12-31"
    )
    assert amounts(invoice(u, "2026-12"))["booth_minimum_period"] == 16000


def test_booth_started_and_ended_in_one_month_pays_the_whole_period():
    # Added 06-05, removed 06-20: June free, setup 5,000, and Jul..Dec = 6 x 8,000 = 48,000.
    u = full(("2026-06-05", "booth", 1), ("2026-06-20", "booth", -1))
    june = amounts(invoice(u, "2026-06"))
    assert (june["booth"], june["line_setup"], june["booth_minimum_period"]) == (
        40000,
        5000,
        48000,
    )


def test_removal_takes_the_newest_booth_unless_an_id_says_otherwise():
    # 5 booths 04-10, 1 more 07-01, one removed 08-05.
    # Without id (last in, first out): the 07-01 booth, period Aug..Jan -> Sep..Jan = 5 months.
    lifo = usage(
        "2026-04-10",
        ("2026-04-10", "booth", 5),
        ("2026-07-01", "booth", 1),
        ("2026-08-05", "booth", -1),
    )
    assert amounts(invoice(lifo, "2026-08"))["booth_minimum_period"] == 40000  # 5 x 8,000
    # With the id of an April booth: period May..Oct -> Sep, Oct = 2 months.
    by_id = usage(
        "2026-04-10",
        ("2026-04-10", "booth", 1, "u1"),
        ("2026-04-10", "booth", 4),
        ("2026-07-01", "booth", 1),
        ("2026-08-05", "booth", -1, "u1"),
    )
    assert amounts(invoice(by_id, "2026-08"))["booth_minimum_period"] == 16000  # 2 x 8,000
