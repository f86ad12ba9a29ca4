"""Booth-to-booth calls inside a contract, and the maximum call duration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.b2bua.conftest import BOOTHS, DOMAIN, B2buaServer, start_b2bua
from tests.b2bua.peers import BOOTH_IP, TRUNK_IP, start_sipp
from tests.conftest import free_port, stop_server, wait_for


@pytest.fixture(scope="module")
def short_calls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[B2buaServer]:
    srv = start_b2bua(tmp_path_factory.mktemp("limits"), "max_call_duration = 1.5")
    try:
        yield srv
    finally:
        stop_server(srv.server)


def _ended(srv: B2buaServer, direction: str) -> dict[str, object]:
    def find() -> dict[str, object] | None:
        rows = [r for r in srv.cdrs() if r["direction"] == direction]
        return rows[-1] if rows and rows[-1]["end_at"] is not None else None

    row = wait_for(find, 10, f"the {direction} CDR")
    assert isinstance(row, dict)
    return row


def test_booth_calls_a_booth_of_its_contract_without_the_trunk(
    short_calls: B2buaServer, tmp_path: Path
) -> None:
    srv = short_calls
    port = free_port()
    login, (password, number) = "booth02", BOOTHS["booth02"]
    reg = start_sipp(
        tmp_path,
        "register",
        "register_auth.xml",
        local_ip=BOOTH_IP,
        local_port=port,
        target=srv.target,
        inf_rows=[f"{login};{DOMAIN};[authentication username={login} password={password}]"],
    )
    r = reg.result()
    assert (r.successful, r.failed) == (1, 0), r.screen
    callee = start_sipp(
        tmp_path, "callee", "b2bua_booth_answer_bye.xml", local_ip=BOOTH_IP, local_port=port
    )
    caller = start_sipp(
        tmp_path,
        "caller",
        "b2bua_booth_call.xml",
        local_ip=BOOTH_IP,
        target=srv.target,
        users={"booth01": BOOTHS["booth01"][0]},
        extra=("-s", number.replace("-", "")),
    )
    for res in (caller.result(), callee.result()):
        assert (res.successful, res.failed) == (1, 0), res.screen + res.messages[-2000:]
    cdr = _ended(srv, "internal")
    assert (cdr["booth"], cdr["callee"], cdr["trunk"]) == ("booth01", "+81333334444", "")
    assert (cdr["status"], cdr["hangup_by"]) == (200, "callee")


def test_maximum_call_duration_hangs_up_both_sides(
    short_calls: B2buaServer, tmp_path: Path
) -> None:
    trunk = start_sipp(
        tmp_path,
        "trunk",
        "b2bua_trunk_talk.xml",
        local_ip=TRUNK_IP,
        local_port=short_calls.trunk_port,
    )
    booth = start_sipp(
        tmp_path,
        "booth",
        "b2bua_booth_call.xml",
        local_ip=BOOTH_IP,
        target=short_calls.target,
        users={"booth01": BOOTHS["booth01"][0]},
        extra=("-s", "0366667777"),
    )
    for res in (booth.result(), trunk.result()):
        assert (res.successful, res.failed) == (1, 0), res.screen + res.messages[-2000:]
    cdr = _ended(short_calls, "outbound")
    assert (cdr["hangup_by"], cdr["reason"]) == ("system", "maximum call duration reached")
    talk = cdr["end_at"] - cdr["answer_at"]  # type: ignore[operator]
    assert 1.4 < talk < 2.5
