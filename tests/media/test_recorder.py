"""The recorder: sample placement (sans-I/O), files, the relay fork, and SIGKILL safety."""

from __future__ import annotations

import array
import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from outbound_pro.media.g711 import alaw_to_linear, encode_alaw, encode_ulaw, ulaw_to_linear
from outbound_pro.media.recorder import CallRecorder, RecorderPool, StereoMixer
from outbound_pro.media.wav import WAV_HEADER_SIZE, repair, sha256_file
from outbound_pro.rtp.relay import RelayEngine
from tests.conftest import ROOT, wait_for
from tests.media.tones import FRAME, RATE, band_ratio_db, peak_hz, rtp, stream, tone_codes
from tests.rtp.util import Peer, relay_config, wait_until


def channels(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    samples = np.frombuffer(data, dtype="<i2")
    return samples[0::2], samples[1::2]


def const_packet(k: int, ts: int, code: int, ssrc: int = 1, pt: int = 0) -> bytes:
    return rtp(k, ts, ssrc, pt, bytes([code]) * FRAME)


# ----------------------------------------------------------------------------- placement


def test_packets_are_placed_by_timestamp_not_by_arrival() -> None:
    mixer = StereoMixer(start=100.0)
    rng = random.Random(1)
    codes = [0x10 + k for k in range(20)]  # each packet a distinct constant sample value
    a = [const_packet(k, 5000 + FRAME * k, codes[k]) for k in range(20)]
    # First packet at exactly 0.1 s (frame 800); later ones jittered by up to +-8 ms.
    arrivals = [100.1] + [100.1 + 0.02 * k + rng.uniform(-0.008, 0.008) for k in range(1, 20)]
    order = list(range(20))
    order[5], order[6] = order[6], order[5]  # and two of them reordered
    mixer.add(0, [a[i] for i in order], [arrivals[i] for i in order])
    b = [const_packet(k, 123, 0x80, ssrc=2, pt=8) for k in range(1)]
    mixer.add(1, b, [100.25])  # B starts at 0.25 s: frame 2000
    first, data = mixer.take(None)
    left, right = channels(data)
    assert first == 0
    assert not left[:800].any()
    for k in range(20):
        block = left[800 + FRAME * k : 800 + FRAME * (k + 1)]
        assert (block == ulaw_to_linear(codes[k])).all(), k
    assert not right[:2000].any()
    assert (right[2000:2160] == alaw_to_linear(0x80)).all()
    assert len(left) == 800 + 20 * FRAME  # the longer channel sets the length


def test_gaps_are_silence_and_late_packets_are_counted() -> None:
    mixer = StereoMixer(start=0.0)
    kept = [k for k in range(50) if not 10 <= k < 30]
    packets = [const_packet(k, FRAME * k, 0x20) for k in kept]
    arrivals = [0.02 * k for k in kept]
    mixer.add(0, packets[:10], arrivals[:10])
    _, first = mixer.take(0.15)  # flush the first 150 ms
    mixer.add(0, packets[10:], arrivals[10:])
    mixer.add(0, [const_packet(3, FRAME * 3, 0x30)], [0.2])  # a copy of packet 3, too late now
    _, rest = mixer.take(None)
    left, right = channels(first + rest)
    assert len(left) == 50 * FRAME
    assert (left[: 10 * FRAME] == ulaw_to_linear(0x20)).all()
    assert not left[10 * FRAME : 30 * FRAME].any()  # 400 ms lost: 400 ms of exact silence
    assert (left[30 * FRAME :] == ulaw_to_linear(0x20)).all()
    assert not right.any()
    assert mixer.sides[0].late == 1


def test_ssrc_change_and_timestamp_jump_reanchor_to_arrival() -> None:
    mixer = StereoMixer(start=0.0)
    first = [const_packet(k, FRAME * k, 0x20) for k in range(10)]
    mixer.add(0, first, [0.02 * k for k in range(10)])
    # A transfer: new SSRC with an unrelated timestamp, arriving at 1.0 s.
    mixer.add(0, [const_packet(0, 999_999, 0x30, ssrc=7)], [1.0])
    # Same SSRC, timestamp leaps 10 s ahead while 0.5 s pass: re-anchor at 1.5 s.
    mixer.add(0, [const_packet(1, 999_999 + 80_000, 0x40, ssrc=7)], [1.5])
    _, data = mixer.take(None)
    left, _ = channels(data)
    assert (left[8000:8160] == ulaw_to_linear(0x30)).all()
    assert (left[12000:12160] == ulaw_to_linear(0x40)).all()
    assert not left[1600:8000].any() and not left[8160:12000].any()
    assert mixer.sides[0].reanchors == 2


def test_alaw_and_ulaw_on_one_side_and_other_codecs_as_silence() -> None:
    mixer = StereoMixer(start=0.0, rtpmap={101: "telephone-event/8000", 96: "opus/48000/2"})
    packets = [
        const_packet(0, 0, 0x20, pt=0),
        const_packet(1, 160, 0x20, pt=8),  # codec switch mid-call (re-INVITE)
        const_packet(2, 320, 0x01, pt=96),  # Opus: relayed, recorded as silence
        rtp(3, 480, 1, 9, b"\x55" * 160),  # G.722: the same
        rtp(4, 480, 1, 101, bytes.fromhex("058a00a0")),  # DTMF event: not audio, not counted
        const_packet(5, 800, 0x20, pt=0),
    ]
    mixer.add(0, packets, [0.0, 0.02, 0.04, 0.06, 0.07, 0.1])
    _, data = mixer.take(None)
    left, _ = channels(data)
    assert (left[0:160] == ulaw_to_linear(0x20)).all()
    assert (left[160:320] == alaw_to_linear(0x20)).all()
    assert not left[320:800].any()
    assert (left[800:960] == ulaw_to_linear(0x20)).all()
    assert mixer.sides[0].non_g711 == 2 and mixer.sides[0].packets == 3


def _simulate(mixer: StereoMixer, seconds: int, ppm_a: float, ppm_b: float) -> tuple[int, int]:
    """Both legs for ``seconds``; leg clocks off by ``ppm``. Returns the last placements' error
    (frames between where each leg's final packet landed and its true wall-clock frame)."""
    marker = 0x80
    rng = random.Random(7)
    total = 0
    result = []
    last_found: list[int | None] = [None, None]
    for minute in range(0, seconds, 60):
        n = min(60, seconds - minute) * 50
        for side, ppm in ((0, ppm_a), (1, ppm_b)):
            step = 0.02 / (1 + ppm * 1e-6)  # a fast clock sends 160 samples in less than 20 ms
            k0 = minute * 50
            packets = []
            arrivals = []
            for k in range(k0, k0 + n):
                last = k == seconds * 50 - 1
                packets.append(const_packet(k, FRAME * k, marker if last else 0x20, ssrc=side + 1))
                arrivals.append(1.0 + k * step + rng.uniform(0, 0.004))
            mixer.add(side, packets, arrivals)
        first, data = mixer.take(1.0 + minute + 59)
        total += len(data) // 4
        left, right = channels(data)
        for side, ch in ((0, left), (1, right)):
            hits = np.flatnonzero(ch == ulaw_to_linear(marker))
            if hits.size:
                last_found[side] = first + int(hits[0])
    first, data = mixer.take(None)
    left, right = channels(data)
    for side, ch in ((0, left), (1, right)):
        hits = np.flatnonzero(ch == ulaw_to_linear(marker))
        if hits.size:
            last_found[side] = first + int(hits[0])
    for side, ppm in ((0, ppm_a), (1, ppm_b)):
        true_frame = round((1.0 + (seconds * 50 - 1) * 0.02 / (1 + ppm * 1e-6)) * RATE)
        assert last_found[side] is not None
        result.append(last_found[side] - true_frame)
    return result[0], result[1]


def test_no_drift_over_a_one_hour_call() -> None:
    mixer = StereoMixer(start=0.0)
    # Leg A's clock is exact; leg B's phone runs 100 ppm fast (0.36 s an hour if uncorrected).
    err_a, err_b = _simulate(mixer, 3600, 0.0, 100.0)
    assert abs(err_a) <= 0.004 * RATE  # only the first packet's network delay (0-4 ms)
    assert abs(err_b) <= 0.04 * RATE + FRAME  # within the drift bound, not 2880 frames away
    assert mixer.sides[0].drift_corrections == 0
    assert mixer.sides[1].drift_corrections >= 5
    assert mixer.sides[0].reanchors == 0 and mixer.sides[1].reanchors == 0


def test_slow_clock_is_corrected_the_other_way() -> None:
    mixer = StereoMixer(start=0.0)
    err_a, err_b = _simulate(mixer, 600, -1000.0, 0.0)  # 0.1 % slow: 0.6 s in 10 minutes
    assert abs(err_a) <= 0.04 * RATE + FRAME and abs(err_b) <= 0.004 * RATE
    assert mixer.sides[0].drift_corrections >= 10


# --------------------------------------------------------------------------------- files


async def test_recorder_writes_hashes_and_reports(tmp_path: Path) -> None:
    path = tmp_path / "rec" / "call.wav"
    rec = CallRecorder(path, start=50.0, lag=0.2)
    left = stream(tone_codes(440, 1.0, encode_ulaw), 0, 1)
    right = stream(tone_codes(1000, 1.0, encode_alaw), 8, 2)
    times = [50.0 + 0.02 * k for k in range(50)]
    rec.feed(0, left[:25], times[:25])
    rec.feed(1, right[:25], times[:25])
    rec.flush(50.6)  # writes up to 0.4 s
    await wait_until(lambda: rec.frames_written == 3200, what="first flush")
    with wave.open(str(path)) as w:
        assert w.getnframes() == 3200
    rec.feed(0, left[25:], times[25:])
    rec.feed(1, right[25:], times[25:])
    rec.feed(1, [rtp(99, 9999, 2, 9, b"\x00" * 160)], [50.99])  # G.722 from a far end
    info = await rec.close()
    assert info.frames == 8000 and info.duration == 1.0
    assert info.size == path.stat().st_size == WAV_HEADER_SIZE + 8000 * 4
    assert info.sha256 == sha256_file(path)
    assert info.packets == 100 and info.non_g711_packets == 1 and info.error is None
    with wave.open(str(path)) as w:
        left_pcm, right_pcm = channels(w.readframes(w.getnframes()))
    assert abs(peak_hz(left_pcm) - 440) < 2 and abs(peak_hz(right_pcm) - 1000) < 2


async def test_a_call_without_rtp_creates_no_file(tmp_path: Path) -> None:
    started: list[str] = []
    rec = CallRecorder(tmp_path / "silent.wav", lag=0.0, on_start=lambda: started.append("x"))
    rec.tap(0)
    rec.tap(1)
    rec.flush(time.monotonic() + 5.0)  # five seconds of nothing: still nothing to write
    info = await rec.close()
    assert info.error is None and info.frames == 0 and info.size == 0 and info.sha256 == ""
    assert info.packets == 0 and not rec.started and started == []
    assert not (tmp_path / "silent.wav").exists()


async def test_the_file_starts_at_the_first_rtp_aligned_to_the_recording_start(
    tmp_path: Path,
) -> None:
    """Indexed (``on_start``) before any audio is queued; silence before the first packet."""
    path = tmp_path / "late.wav"
    seen: list[bool] = []
    rec = CallRecorder(path, start=10.0, lag=0.0, on_start=lambda: seen.append(path.exists()))
    place = rec.tap(1)
    rec.flush(12.0)  # two seconds without RTP: nothing taken, nothing started
    assert not rec.started and seen == []
    place(const_packet(0, 0, 0x20, pt=0), 13.0)  # the far end's first packet, at 3 s
    rec.flush(13.5)
    assert rec.started and seen == [False]  # told before the file could exist
    info = await rec.close()
    assert seen == [False] and info.packets == 1 and info.sha256 == sha256_file(path)
    with wave.open(str(path)) as w:
        left, right = channels(w.readframes(w.getnframes()))
    assert len(right) == 3.5 * RATE  # the flush took everything up to 13.5 s
    assert not left.any() and not right[: 3 * RATE].any() and not right[3 * RATE + FRAME :].any()
    assert (right[3 * RATE : 3 * RATE + FRAME] == ulaw_to_linear(0x20)).all()


async def test_a_write_error_stops_the_recording_not_the_caller(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    rec = CallRecorder(tmp_path / "file" / "call.wav", start=0.0)
    rec.feed(0, [const_packet(0, 0, 0x20)], [0.0])
    rec.flush(2.0)
    info = await rec.close()
    assert info.error is not None and "Error" in info.error
    assert info.size == 0 and info.frames == 0
    rec.feed(0, [const_packet(1, 160, 0x20)], [0.02])  # ignored after close


async def test_relay_fork_records_booth_left_far_end_right(tmp_path: Path) -> None:
    """Two real UDP peers send tones through the relay in real time; check the WAV by FFT."""
    engine = RelayEngine(relay_config())
    a, b = await Peer.open(), await Peer.open()
    s = await engine.open_session("rec-1")
    s.set_remote("a", "127.0.0.1", a.port)
    s.set_remote("b", "127.0.0.1", b.port)
    rec = CallRecorder(tmp_path / "call.wav", lag=0.3)
    s.fork(rec)
    booth = stream(tone_codes(440, 2.0, encode_ulaw), 0, 0xA)  # 100 packets from t = 0
    far = stream(tone_codes(1000, 1.5, encode_alaw), 8, 0xB, ts0=777)  # 75 from t = 0.5 s
    gap = range(30, 50)  # the far end loses 400 ms (1.1 s .. 1.5 s)
    t0 = time.monotonic() + 0.05
    for k in range(100):
        await asyncio.sleep(max(0.0, t0 + 0.02 * k - time.monotonic()))
        a.send(booth[k], s.leg_a.local_port)
        j = k - 25
        if 0 <= j < 75 and j not in gap:
            b.send(far[j], s.leg_b.local_port)
    await wait_until(lambda: len(b.received) == 100 and len(a.received) == 55, what="relayed")
    stats = await s.close()
    await engine.close()
    a.close()
    b.close()
    info = stats.recording
    assert info is not None and info.error is None and info.late_packets == 0
    assert info.packets == 155 and stats.leg_b.rtp.lost == 20
    with wave.open(info.path) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        left, right = channels(w.readframes(w.getnframes()))
    onset_a = int(np.flatnonzero(left)[0])
    onset_b = int(np.flatnonzero(right)[0])
    # B started 25 packets (0.5 s) after A: the channels are aligned to the wall clock.
    assert abs((onset_b - onset_a) - 0.5 * RATE) <= 0.03 * RATE
    talk_a = left[onset_a : onset_a + 16000]
    talk_b = right[onset_b : onset_b + 4800]  # before the gap
    assert abs(peak_hz(talk_a) - 440) < 3 and abs(peak_hz(talk_b) - 1000) < 3
    assert band_ratio_db(talk_a, 440, 1000) > 40 and band_ratio_db(talk_b, 1000, 440) > 40
    # The gap is silence, placed by RTP timestamp: frames 30*160 .. 50*160 after B's onset.
    assert not right[onset_b + 30 * FRAME + 80 : onset_b + 50 * FRAME - 80].any()
    assert right[onset_b + 50 * FRAME : onset_b + 51 * FRAME].any()
    assert len(right[onset_b:]) >= 75 * FRAME


# ------------------------------------------------------------------------------- SIGKILL


def test_sigkill_mid_call_leaves_a_valid_wav(tmp_path: Path) -> None:
    path = tmp_path / "killed.wav"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.media.kill_child", str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        sizes: list[int] = []

        def grown_enough() -> bool:
            size = path.stat().st_size if path.exists() else 0
            if not sizes or size != sizes[-1]:
                sizes.append(size)
            return len(sizes) >= 6 and size >= WAV_HEADER_SIZE + 4 * RATE // 2

        wait_for(grown_enough, 20, "several flushes of the killed recorder")
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
    size = path.stat().st_size
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        nframes = w.getnframes()
        data = w.readframes(nframes)
    assert nframes >= RATE // 2
    assert len(data) == 4 * nframes  # the header never claims more than is on disk
    assert 0 <= size - WAV_HEADER_SIZE - 4 * nframes <= 4 * RATE  # at most one unpatched flush
    left, right = channels(data)
    assert abs(peak_hz(left[-4000:]) - 440) < 3 and abs(peak_hz(right[-4000:]) - 1000) < 3
    assert repair(path) == (size - WAV_HEADER_SIZE) // 4
    with wave.open(str(path)) as w:
        assert w.getnframes() == (size - WAV_HEADER_SIZE) // 4
    samples = array.array("h")
    samples.frombytes(path.read_bytes()[WAV_HEADER_SIZE:])
    assert len(samples) == 2 * ((size - WAV_HEADER_SIZE) // 4)


@pytest.mark.parametrize("lag", [0.0, 0.5])
def test_take_respects_the_horizon(lag: float) -> None:
    mixer = StereoMixer(start=0.0)
    mixer.add(0, stream(tone_codes(440, 1.0, encode_ulaw), 0, 1), [0.02 * k for k in range(50)])
    first, data = mixer.take(1.0 - lag)
    assert first == 0 and len(data) == 4 * int((1.0 - lag) * RATE)
    first, data = mixer.take(1.0 - lag)
    assert data == b"" and first == int((1.0 - lag) * RATE)


async def test_pool_flushes_many_recordings_on_its_own_schedule(tmp_path: Path) -> None:
    pool = RecorderPool(flush_interval=0.1, ticks_per_second=50)
    recs = [pool.recorder(tmp_path / f"{i}.wav", lag=0.05) for i in range(3)]
    taps = [(r.tap(0), r.tap(1)) for r in recs]
    left = stream(tone_codes(440, 1.0, encode_ulaw), 0, 1)
    right = stream(tone_codes(1000, 1.0, encode_alaw), 8, 2)
    t0 = time.monotonic()
    for k in range(50):  # one second of both legs, in real time
        await asyncio.sleep(max(0.0, t0 + 0.02 * k - time.monotonic()))
        now = time.monotonic()
        for tap_a, tap_b in taps:
            tap_a(left[k], now)
            tap_b(right[k], now)
    # The pool wrote without being asked: every file has grown before any close.
    await wait_until(lambda: all(r.frames_written > 4000 for r in recs), what="pool flushes")
    infos = [await r.close() for r in recs]
    for info in infos:
        assert info.error is None and info.packets == 100 and info.late_packets == 0
        with wave.open(info.path) as w:
            left_pcm, right_pcm = channels(w.readframes(w.getnframes()))
        onset = int(np.flatnonzero(left_pcm)[0]) - 1  # a sine starts at 0: sample 0 is silent
        assert len(left_pcm) - onset == 50 * FRAME  # nothing lost or doubled across flushes
        assert abs(peak_hz(left_pcm[onset:]) - 440) < 2
        assert abs(peak_hz(right_pcm[onset:]) - 1000) < 2
    assert pool._timer is None  # the last close stops the pool's timer
