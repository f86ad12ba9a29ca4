"""Calls from the network: the trusted carrier rings a registered booth; strangers are refused."""

from __future__ import annotations

from pathlib import Path

from tests.b2bua.conftest import BOOTHS, DOMAIN, B2buaServer
from tests.b2bua.peers import BOOTH_IP, STRANGER_IP, TRUNK_IP, start_sipp
from tests.conftest import free_port, wait_for


def test_inbound_call_rings_the_registered_booth(b2bua: B2buaServer, tmp_path: Path) -> None:
    """booth02 registers from port P (SIPp, digest), then a SIPp UAS on the same port is the
    phone; the carrier calls booth02's number in national form."""
    port = free_port()
    login, (password, number) = "booth02", BOOTHS["booth02"]
    reg = start_sipp(
        tmp_path,
        "register",
        "register_auth.xml",
        local_ip=BOOTH_IP,
        local_port=port,
        target=b2bua.target,
        inf_rows=[f"{login};{DOMAIN};[authentication username={login} password={password}]"],
    )
    r = reg.result()
    assert (r.successful, r.failed) == (1, 0), r.screen
    assert wait_for(lambda: b2bua.bindings(login), 5, "booth02's binding")
    phone = start_sipp(
        tmp_path, "phone", "b2bua_booth_answer.xml", local_ip=BOOTH_IP, local_port=port
    )
    carrier = start_sipp(
        tmp_path,
        "carrier",
        "b2bua_trunk_inbound.xml",
        local_ip=TRUNK_IP,
        target=b2bua.target,
        extra=("-s", number.replace("-", "")),
    )
    c, p = carrier.result(), phone.result()
    assert (c.successful, c.failed) == (1, 0), c.screen + c.messages[-3000:]
    assert (p.successful, p.failed) == (1, 0), p.screen + p.messages[-3000:]

    def ended() -> dict[str, object] | None:
        rows = [r for r in b2bua.cdrs() if r["direction"] == "inbound"]
        return rows[-1] if rows and rows[-1]["end_at"] is not None else None

    cdr = wait_for(ended, 10, "the inbound CDR")
    assert isinstance(cdr, dict)
    assert (cdr["caller"], cdr["callee"], cdr["booth"]) == (
        "+81399998888",
        "+81333334444",
        "booth02",
    )
    assert (cdr["status"], cdr["hangup_by"], cdr["trunk"]) == (200, "caller", "carrier")


def test_inbound_to_a_booth_nobody_registered_is_480(b2bua: B2buaServer, tmp_path: Path) -> None:
    carrier = start_sipp(
        tmp_path,
        "carrier",
        "b2bua_trunk_unregistered.xml",
        local_ip=TRUNK_IP,
        target=b2bua.target,
        extra=("-s", "0355556666"),
    )
    r = carrier.result()
    assert (r.successful, r.failed) == (1, 0), r.screen + r.messages[-3000:]
    assert "nobody is registered for this number" in r.messages


def test_untrusted_source_is_refused(b2bua: B2buaServer, tmp_path: Path) -> None:
    stranger = start_sipp(
        tmp_path,
        "stranger",
        "b2bua_stranger_invite.xml",
        local_ip=STRANGER_IP,
        target=b2bua.target,
        extra=("-s", "0311112222"),
    )
    r = stranger.result()
    assert (r.successful, r.failed) == (1, 0), r.screen + r.messages[-3000:]
    assert "calls are accepted only from the carrier" in r.messages
