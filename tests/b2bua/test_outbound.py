"""Outbound calls from a booth through the trunk, SIPp on both sides (booth 127.0.0.1, carrier
127.0.0.2), CDRs read from the server's database."""

from __future__ import annotations

from pathlib import Path

from tests.b2bua.conftest import BOOTHS, B2buaServer
from tests.b2bua.peers import BOOTH_IP, TRUNK_IP, SippProc, start_sipp
from tests.conftest import wait_for
from tests.peers.sipp import SippResult

BOOTH = {"booth01": BOOTHS["booth01"][0]}
CALLEE = "0366667777"


def _ok(*results: SippResult) -> None:
    for r in results:
        assert (r.successful, r.failed) == (1, 0), r.screen + r.messages[-3000:]


def _trunk(b2bua: B2buaServer, tmp: Path, scenario: str) -> SippProc:
    return start_sipp(tmp, "trunk", scenario, local_ip=TRUNK_IP, local_port=b2bua.trunk_port)


def _booth(
    b2bua: B2buaServer, tmp: Path, scenario: str, dialled: str = CALLEE, login: str = "booth01"
) -> SippProc:
    return start_sipp(
        tmp,
        "booth",
        scenario,
        local_ip=BOOTH_IP,
        target=b2bua.target,
        users={login: BOOTHS[login][0]},
        extra=("-s", dialled),
    )


def _cdr(b2bua: B2buaServer, a_call_id_prefix: str = "") -> dict[str, object]:
    """The newest CDR once the call has ended (its row is finished asynchronously)."""

    def ended() -> dict[str, object] | None:
        rows = b2bua.cdrs()
        return rows[-1] if rows and rows[-1]["end_at"] is not None else None

    row = wait_for(ended, 10, "the CDR to be closed")
    assert isinstance(row, dict)
    return row


def test_call_answered_by_trunk_and_hung_up_by_callee(b2bua: B2buaServer, tmp_path: Path) -> None:
    """407 for the booth, 407 from the carrier answered with the trunk credentials, caller ID
    is the booth's number in national form, booth-only headers and G.729 do not cross."""
    trunk = _trunk(b2bua, tmp_path, "b2bua_trunk_answer_bye.xml")
    booth = _booth(b2bua, tmp_path, "b2bua_booth_call.xml")
    _ok(booth.result(), trunk.result())
    cdr = _cdr(b2bua)
    assert cdr["direction"] == "outbound"
    assert cdr["booth"] == "booth01"
    assert (cdr["caller"], cdr["callee"]) == ("+81311112222", "+81366667777")
    assert cdr["hangup_by"] == "callee"
    assert cdr["status"] == 200
    assert cdr["trunk"] == "carrier"
    assert cdr["answer_at"] >= cdr["ringing_at"] >= cdr["setup_at"]  # type: ignore[operator]
    assert cdr["end_at"] > cdr["answer_at"]  # type: ignore[operator]
    assert cdr["a_call_id"] != cdr["b_call_id"]
    assert "G729" not in str(cdr["codec_b"])
    # SIPp sent no RTP: the call has no recording, no index row and no file, and says so.
    assert cdr["recording_id"] is None
    assert '"packets":0' in str(cdr["media_a"]) and '"packets":0' in str(cdr["media_b"])
    assert not [r for r in b2bua.recordings() if r["call_ref"] == cdr["call_ref"]]
    recordings = b2bua.server.data_dir / "recordings"
    assert not list(recordings.glob(f"**/{cdr['call_ref']}.wav"))


def test_cancel_while_ringing(b2bua: B2buaServer, tmp_path: Path) -> None:
    trunk = _trunk(b2bua, tmp_path, "b2bua_trunk_ring_cancel.xml")
    booth = _booth(b2bua, tmp_path, "b2bua_booth_cancel.xml")
    _ok(booth.result(), trunk.result())
    cdr = _cdr(b2bua)
    assert (cdr["status"], cdr["hangup_by"]) == (487, "caller")
    assert cdr["answer_at"] is None and cdr["recording_id"] is None


def test_busy_is_relayed(b2bua: B2buaServer, tmp_path: Path) -> None:
    trunk = _trunk(b2bua, tmp_path, "b2bua_trunk_busy.xml")
    booth = _booth(b2bua, tmp_path, "b2bua_booth_busy.xml")
    _ok(booth.result(), trunk.result())
    cdr = _cdr(b2bua)
    assert (cdr["status"], cdr["hangup_by"]) == (486, "callee")


def test_no_answer_until_ring_timeout(b2bua: B2buaServer, tmp_path: Path) -> None:
    """ring_timeout is 2 s in this server: the carrier gets a CANCEL, the booth a 480."""
    trunk = _trunk(b2bua, tmp_path, "b2bua_trunk_ring_cancel.xml")
    booth = _booth(b2bua, tmp_path, "b2bua_booth_noanswer.xml")
    _ok(booth.result(), trunk.result())
    cdr = _cdr(b2bua)
    assert (cdr["status"], cdr["hangup_by"], cdr["reason"]) == (480, "system", "no answer")
    assert 1.8 < cdr["end_at"] - cdr["setup_at"] < 4  # type: ignore[operator]


def test_hold_and_resume_are_relayed(b2bua: B2buaServer, tmp_path: Path) -> None:
    trunk = _trunk(b2bua, tmp_path, "b2bua_trunk_hold.xml")
    booth = _booth(b2bua, tmp_path, "b2bua_booth_hold.xml")
    _ok(booth.result(), trunk.result())
    cdr = _cdr(b2bua)
    assert (cdr["status"], cdr["hangup_by"]) == (200, "caller")


def test_emergency_number_refused_with_reason(b2bua: B2buaServer, tmp_path: Path) -> None:
    booth = _booth(b2bua, tmp_path, "b2bua_booth_forbidden.xml", dialled="110")
    _ok(booth.result())
    cdr = _cdr(b2bua)
    assert cdr["status"] == 403
    assert "110 (police)" in str(cdr["reason"])
    assert cdr["b_call_id"] == ""


def test_policy_hours_refused_with_reason(b2bua: B2buaServer, tmp_path: Path) -> None:
    """booth03's affiliation may call only during one minute twelve hours from now."""
    booth = _booth(b2bua, tmp_path, "b2bua_booth_forbidden.xml", login="booth03")
    _ok(booth.result())
    cdr = _cdr(b2bua)
    assert cdr["status"] == 403 and cdr["booth"] == "booth03"
    assert "outside allowed hours" in str(cdr["reason"])
