"""Usage files: decoding, and errors that name the line and element to fix."""

from __future__ import annotations

import pytest

from outbound_pro.billing import (
    Usage,
    UsageError,
    UsageSource,
    build_timeline,
    decode_usage,
    packaged_tariff,
)

from .factories import d, full, usage

ISSUE_EXAMPLE = b"""{"contract": "C-1", "service_start": "2026-04-10", "service_end": null,
 "changes": [{"date": "2026-04-10", "unit": "booth", "delta": 5},
             {"date": "2026-06-03", "unit": "predictive_booth", "delta": 3}],
 "outages": [{"recognised": "2026-07-01T09:00:00+09:00",
              "restored": "2026-07-03T10:00:00+09:00"}]}
"""


def decode(text: str) -> Usage:
    return decode_usage(text.encode(), packaged_tariff(), source="u.json")


def error(text: str) -> str:
    with pytest.raises(UsageError) as info:
        decode(text)
    return str(info.value)


def test_issue_example_decodes():
    u = decode_usage(ISSUE_EXAMPLE, packaged_tariff())
    assert u.contract == "C-1"
    assert u.service_start == d("2026-04-10") and u.service_end is None
    assert [(c.date, c.unit, c.delta) for c in u.changes] == [
        (d("2026-04-10"), "booth", 5),
        (d("2026-06-03"), "predictive_booth", 3),
    ]
    assert (u.outages[0].restored - u.outages[0].recognised).total_seconds() == 49 * 3600


def test_negative_count_names_the_line():
    text = """{"contract": "C-1", "service_start": "2026-04-10",
 "changes": [
  {"date": "2026-04-10", "unit": "booth", "delta": 2},
  {"date": "2026-05-01", "unit": "booth", "delta": -3}
 ]}"""
    assert error(text) == (
        "u.json, line 4, changes[1]: booth -3 on 2026-05-01 would leave -1 booth "
        "(2 in service then); remove at most 2"
    )


def test_unknown_unit_names_the_line_and_lists_units():
    text = """{"contract": "C-1", "service_start": "2026-04-10",
 "changes": [{"date": "2026-04-10", "unit": "booths", "delta": 2}]}"""
    message = error(text)
    assert message.startswith("u.json, line 2, changes[0]: unknown unit 'booths'; units are ")
    assert "booth, extended_booth" in message


def test_date_outside_service_period_names_the_line():
    text = """{"contract": "C-1", "service_start": "2026-04-10", "service_end": "2026-09-30",
 "changes": [{"date": "2026-04-10", "unit": "booth", "delta": 2},
             {"date": "2026-04-09", "unit": "booth", "delta": 1},
             {"date": "2026-10-01", "unit": "booth", "delta": -1}]}"""
    assert "line 3, changes[1]: booth +1 on 2026-04-09 is outside the service period" in (
        error(text)
    )


def test_date_after_service_end_names_the_line():
    text = """{"contract": "C-1", "service_start": "2026-04-10", "service_end": "2026-09-30",
 "changes": [{"date": "2026-04-10", "unit": "booth", "delta": 2},
             {"date": "2026-10-01", "unit": "booth", "delta": -1}]}"""
    assert "line 3, changes[1]: booth -1 on 2026-10-01 is outside the service period " in (
        error(text)
    )


def test_wrong_type_names_line_and_field():
    text = """{"contract": "C-1", "service_start": "2026-04-10",
 "changes": [
   {"date": "2026-04-10", "unit": "booth", "delta": "5"}]}"""
    assert error(text) == (
        "u.json, line 3, changes[0]: Expected `int`, got `str` - at `$.changes[0].delta`"
    )


def test_misspelled_field_is_refused_with_the_allowed_fields():
    text = """{"contract": "C-1", "service_start": "2026-04-10",
 "changes": [{"date": "2026-04-10", "unit": "booth", "delat": 5}]}"""
    message = error(text)
    assert "line 2, changes[0]" in message
    assert "unknown field `delat`" in message and "allowed fields: date, unit, delta, id" in message
    top = """{"contract": "C-1",
 "service_start": "2026-04-10",
 "servce_end": null}"""
    assert error(top).startswith("u.json, line 3: Object contains unknown field `servce_end`")


def test_outage_without_time_zone_is_refused():
    text = """{"contract": "C-1", "service_start": "2026-04-10",
 "outages": [{"recognised": "2026-07-01T09:00:00", "restored": "2026-07-03T10:00:00+09:00"}]}"""
    message = error(text)
    assert "line 2, outages[0]" in message and "timezone" in message


def test_outage_restored_before_recognised_is_refused():
    text = """{"contract": "C-1", "service_start": "2026-04-10",
 "outages": [{"recognised": "2026-07-03T09:00:00+09:00",
              "restored": "2026-07-01T10:00:00+09:00"}]}"""
    assert "line 2, outages[0]: restored 2026-07-01T10:00:00+09:00 is not after" in error(text)


def test_outage_before_service_start_in_japan_time_is_refused():
    # 2026-04-09T16:00Z is 2026-04-10 01:00 in Tokyo: inside. 15:00Z is 04-10 00:00: inside.
    # 14:59Z is 04-09 23:59 in Tokyo: before service start.
    ok = """{"contract": "C-1", "service_start": "2026-04-10",
 "outages": [{"recognised": "2026-04-09T15:00:00Z", "restored": "2026-04-11T00:00:00Z"}]}"""
    assert decode(ok).outages[0].recognised.hour == 15
    bad = ok.replace("2026-04-09T15:00:00Z", "2026-04-09T14:59:00Z")
    assert "outages[0]: recognised 2026-04-09T14:59:00+00:00 is outside the service" in error(bad)


def test_malformed_json_names_the_line():
    text = """{"contract": "C-1", "service_start": "2026-04-10",
 "changes": [{"date": "2026-04-10", "unit": "booth", "delta": 5,}]}"""
    assert error(text).startswith("u.json, line 2: JSON is malformed: trailing comma")


def test_zero_delta_is_refused():
    text = """{"contract": "C-1", "service_start": "2026-04-10",
 "changes": [{"date": "2026-04-10", "unit": "booth", "delta": 0}]}"""
    assert "changes[0]: booth 0 on 2026-04-10: delta 0 changes nothing" in error(text)


def test_option_cannot_outnumber_booths_at_the_end_of_a_day():
    # Removing a booth and its predictive option on the same day is fine in any order...
    u = usage(
        "2026-04-10",
        ("2026-04-10", "booth", 2),
        ("2026-04-10", "predictive_booth", 2),
        ("2026-06-01", "booth", -1),
        ("2026-06-01", "predictive_booth", -1),
    )
    assert len(build_timeline(u, packaged_tariff()).of("booth")) == 2
    # ...but leaving two predictive booths on one booth is refused, naming the booth removal.
    bad = usage(
        "2026-04-10",
        ("2026-04-10", "booth", 2),
        ("2026-04-10", "predictive_booth", 2),
        ("2026-06-01", "booth", -1),
    )
    with pytest.raises(UsageError, match=r"2 predictive_booth but only 1 booth") as info:
        build_timeline(bad, packaged_tariff())
    assert info.value.path == "changes[2]"


def test_sip_number_needs_a_device():
    bad = usage("2026-04-10", ("2026-04-10", "sip_number", 1))
    with pytest.raises(UsageError, match="1 sip_number but no sip_device"):
        build_timeline(bad, packaged_tariff())


def test_removal_without_id_takes_the_most_recently_added_unit():
    # Booths added 04-10 and 07-01; the 08-05 removal ends the 07-01 one (last in, first out).
    u = usage(
        "2026-04-10",
        ("2026-04-10", "booth", 1),
        ("2026-07-01", "booth", 1),
        ("2026-08-05", "booth", -1),
    )
    spans = build_timeline(u, packaged_tariff()).of("booth")
    assert [(s.start, s.end) for s in spans] == [
        (d("2026-04-10"), None),
        (d("2026-07-01"), d("2026-08-05")),
    ]


def test_removal_with_id_ends_that_unit():
    u = usage(
        "2026-04-10",
        ("2026-04-10", "booth", 1, "u1"),
        ("2026-07-01", "booth", 1, "u2"),
        ("2026-08-05", "booth", -1, "u1"),
    )
    spans = build_timeline(u, packaged_tariff()).of("booth")
    assert {s.id: s.end for s in spans} == {"u1": d("2026-08-05"), "u2": None}
    unknown = usage(
        "2026-04-10", ("2026-04-10", "booth", 1, "u1"), ("2026-05-01", "booth", -1, "x")
    )
    with pytest.raises(UsageError, match="that id is not in service"):
        build_timeline(unknown, packaged_tariff())
    twice = usage("2026-04-10", ("2026-04-10", "booth", 1, "u1"), ("2026-05-01", "booth", 1, "u1"))
    with pytest.raises(UsageError, match="that id is already in service"):
        build_timeline(twice, packaged_tariff())


def test_contract_end_ends_every_unit_and_contract_level_span():
    u = full(end="2026-07-31")
    timeline = build_timeline(u, packaged_tariff())
    for unit in ("contract", "booth", "contract_with_predictive", "contract_with_sip"):
        assert {s.end for s in timeline.of(unit)} == {d("2026-07-31")}


def test_service_end_before_start_is_refused():
    with pytest.raises(UsageError, match="service_end 2026-04-09 is before service_start"):
        build_timeline(usage("2026-04-10", end="2026-04-09"), packaged_tariff())


def test_a_database_adapter_is_any_usage_source():
    class FakeAccounts:
        """What the accounts adapter will look like: contract ID in, the same Usage out."""

        def usage(self, contract: str) -> Usage:
            return full()

    source: UsageSource = FakeAccounts()
    assert source.usage("C-1") == decode_usage(
        b'{"contract": "C-1", "service_start": "2026-04-10", "changes": ['
        b'{"date": "2026-04-10", "unit": "booth", "delta": 5},'
        b'{"date": "2026-04-10", "unit": "sub_admin_id", "delta": 2},'
        b'{"date": "2026-04-10", "unit": "affiliation", "delta": 1},'
        b'{"date": "2026-04-10", "unit": "extended_booth", "delta": 2},'
        b'{"date": "2026-04-10", "unit": "predictive_booth", "delta": 3},'
        b'{"date": "2026-04-10", "unit": "sip_device", "delta": 2},'
        b'{"date": "2026-04-10", "unit": "sip_number", "delta": 3}]}',
        packaged_tariff(),
    )


def test_absurd_delta_is_refused_before_it_is_expanded():
    with pytest.raises(UsageError, match="more than 10,000 units in one change"):
        build_timeline(usage("2026-04-10", ("2026-04-10", "booth", 10**9)), packaged_tariff())
