"""The crash-safe WAV writer: a valid header after every append, repair, hashing."""

from __future__ import annotations

import hashlib
import os
import wave
from pathlib import Path

import pytest

from outbound_pro.media.wav import WAV_HEADER_SIZE, WavWriter, repair, sha256_file, wav_header


def read(path: Path) -> tuple[wave._wave_params, bytes]:
    with wave.open(str(path), "rb") as w:
        return w.getparams(), w.readframes(w.getnframes())


def test_header_is_canonical() -> None:
    h = wav_header(2, 8000, 2, 400)
    assert len(h) == WAV_HEADER_SIZE
    assert h[:4] == b"RIFF" and int.from_bytes(h[4:8], "little") == 436
    assert h[8:16] == b"WAVEfmt " and h[36:40] == b"data"
    assert int.from_bytes(h[28:32], "little") == 8000 * 4  # byte rate
    assert int.from_bytes(h[40:44], "little") == 400


def test_file_is_valid_after_creation_and_every_append(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    w = WavWriter(path, fsync_interval=0)
    params, data = read(path)
    assert (params.nchannels, params.sampwidth, params.framerate, params.nframes) == (2, 2, 8000, 0)
    written = b""
    for i in range(1, 6):
        chunk = os.urandom(4 * 800 * i)
        w.append(chunk)
        written += chunk
        params, data = read(path)
        assert params.nframes == len(written) // 4 == w.frames
        assert data == written
        assert path.stat().st_size == WAV_HEADER_SIZE + len(written)
    w.append(b"")
    with pytest.raises(ValueError):
        w.append(b"\x00\x00")  # half a stereo frame
    w.close()
    w.close()
    with pytest.raises(ValueError):
        w.append(b"\x00" * 4)
    assert read(path)[1] == written


def test_repair_covers_data_written_after_the_last_header(tmp_path: Path) -> None:
    path = tmp_path / "crashed.wav"
    w = WavWriter(path, fsync_interval=None)
    w.append(b"\x01\x00\x02\x00" * 100)
    w.close()
    with open(path, "ab") as f:  # what a kill between the data and the header write leaves
        f.write(b"\x03\x00\x04\x00" * 50 + b"\x05\x00")
    params, data = read(path)
    assert params.nframes == 100 and len(data) == 400  # still valid, just shorter
    assert repair(path) == 150
    params, data = read(path)
    assert params.nframes == 150 and data[-4:] == b"\x03\x00\x04\x00"
    assert path.stat().st_size == WAV_HEADER_SIZE + 600  # the partial frame is gone
    (tmp_path / "junk.wav").write_bytes(b"RIFX" + bytes(60))
    with pytest.raises(ValueError):
        repair(tmp_path / "junk.wav")


def test_sha256_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    data = os.urandom(3 * 1024 * 1024 + 17)
    path.write_bytes(data)
    assert sha256_file(path, chunk=65536) == hashlib.sha256(data).hexdigest()
