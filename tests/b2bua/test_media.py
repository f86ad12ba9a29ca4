"""Media through the relay, the stereo recording, and a SIGKILL in the middle of a call.

SIPp does the signalling on both sides; the RTP of each side is sent and received by this test
from the addresses the SDP names (booth 127.0.0.1, carrier 127.0.0.2), so what each side heard
can be analysed: the booth sends 440 Hz, the carrier 1000 Hz.
"""

from __future__ import annotations

import hashlib
import signal
import wave
from pathlib import Path

import numpy as np

from outbound_pro.media.g711 import decode_ulaw
from tests.b2bua.conftest import b2bua_toml, start_b2bua
from tests.b2bua.media_call import MediaPeer, start_talk_call, stream_both
from tests.b2bua.peers import BOOTH_IP, TRUNK_IP, SippProc
from tests.conftest import start_server, stop_server, wait_for
from tests.media.tones import band_ratio_db

BOOTH_HZ, FAR_HZ = 440.0, 1000.0


def _pcm(codes: bytes) -> np.ndarray:
    return np.frombuffer(decode_ulaw(bytes(codes)), dtype="<i2").astype(np.float64)


def test_tones_cross_and_recording_survives_sigkill(tmp_path: Path) -> None:
    srv = start_b2bua(tmp_path / "srv")
    a, b = MediaPeer(BOOTH_IP, BOOTH_HZ), MediaPeer(TRUNK_IP, FAR_HZ)
    procs: list[SippProc] = []
    try:
        # 1. A complete call: each side hears the other, the recording is booth left.
        booth, trunk, ports = start_talk_call(
            tmp_path, "call1", srv.target, srv.trunk_port, 2500, a, b
        )
        procs += [booth, trunk]
        stream_both(a, b, ports, 2.0)
        for r in (booth.result(), trunk.result()):
            assert (r.successful, r.failed) == (1, 0), r.screen
        heard_by_booth, heard_by_far = _pcm(a.heard), _pcm(b.heard)
        assert len(heard_by_booth) > 8000 and len(heard_by_far) > 8000
        assert band_ratio_db(heard_by_booth[-8000:], FAR_HZ, BOOTH_HZ) > 20
        assert band_ratio_db(heard_by_far[-8000:], BOOTH_HZ, FAR_HZ) > 20

        def done(call_no: int, state: str) -> dict[str, object] | None:
            rows = srv.recordings()
            ok = len(rows) >= call_no and rows[call_no - 1]["state"] == state
            return rows[call_no - 1] if ok else None

        first = wait_for(lambda: done(1, "complete"), 10, "the first recording")
        assert isinstance(first, dict)
        path1 = Path(str(first["path"]))
        with wave.open(str(path1)) as w:
            assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 8000, 2)
            stereo = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
        assert len(stereo) > 8000
        # the last second with audio on both channels
        loud = np.nonzero((np.abs(stereo[:, 0]) > 1000) & (np.abs(stereo[:, 1]) > 1000))[0]
        block = stereo[loud[-1] - 8000 : loud[-1]].astype(np.float64)
        assert band_ratio_db(block[:, 0], BOOTH_HZ, FAR_HZ) > 20
        assert band_ratio_db(block[:, 1], FAR_HZ, BOOTH_HZ) > 20
        sha1 = hashlib.sha256(path1.read_bytes()).hexdigest()
        assert sha1 == first["sha256"]
        cdr1 = srv.cdrs()[-1]
        media_b = str(cdr1["media_b"])
        assert '"packets":' in media_b and '"packets":0' not in media_b

        # 2. A call killed with the server: the file written so far stays a valid WAV.
        a.heard.clear()
        booth, trunk, ports = start_talk_call(
            tmp_path, "call2", srv.target, srv.trunk_port, 30000, a, b
        )
        procs += [booth, trunk]
        stream_both(a, b, ports, 3.0)
        row = wait_for(lambda: done(2, "recording"), 5, "the second recording's row")
        assert isinstance(row, dict)
        path2 = Path(str(row["path"]))
        wait_for(
            lambda: path2.exists() and path2.stat().st_size > 44 + 4 * 4000,
            10,
            "recorded audio on disk",
        )
        srv.server.proc.send_signal(signal.SIGKILL)
        srv.server.proc.wait(5)
        for p in procs:
            p.stop()
    finally:
        a.close()
        b.close()
        for p in procs:
            p.stop()
        stop_server(srv.server)

    again = start_server(tmp_path / "srv", b2bua_toml())
    try:
        recs = srv.recordings()
        assert recs[0]["sha256"] == sha1 == hashlib.sha256(path1.read_bytes()).hexdigest()
        assert recs[1]["state"] == "interrupted"
        with wave.open(str(path2)) as w:
            frames = w.getnframes()
            assert w.getnchannels() == 2 and frames > 4000
        assert path2.stat().st_size == 44 + 4 * frames == recs[1]["size"]
        assert recs[1]["sha256"] == hashlib.sha256(path2.read_bytes()).hexdigest()
        cdr1_after, cdr2 = srv.cdrs()[-2:]
        assert cdr1_after == cdr1  # the finished call's CDR is intact, recording linked
        assert cdr1["recording_id"] == recs[0]["id"] and cdr1["status"] == 200
        assert cdr2["hangup_by"] == "system" and cdr2["end_at"] is not None
        assert cdr2["reason"] == "interrupted by server restart"
        assert cdr2["answer_at"] is not None and cdr2["recording_id"] == recs[1]["id"]
    finally:
        stop_server(again)
