"""A PCM WAV file that is valid at every instant, so a killed server leaves playable recordings.

Crash safety, in order of the writes of one :meth:`WavWriter.append`:

1. the new frames are written after the existing data with ``os.pwrite``;
2. the whole 44-byte header, with the RIFF and data sizes covering the new frames, is
   rewritten at offset 0 with one ``os.pwrite``.

A small ``pwrite`` inside one page is not torn by a signal, and the page cache outlives the
process, so after SIGKILL (or an OOM kill) at any moment the header describes exactly the
frames of the last completed append, and any bytes after them are ignored by every WAV reader.
:func:`repair` (run at start-up on files left open) extends the header over such a tail.

``fsync`` policy: killing the *process* needs no fsync. Surviving a power cut or a kernel crash
does; ``fdatasync`` runs every ``fsync_interval`` seconds of appends (and on close), so at most
that much audio is lost and :func:`repair` fixes a header that reached the disk ahead of its
data. ``fsync_interval=0`` syncs after every append, ``None`` only on close.

All methods block; callers on the event loop run them in an executor (see ``recorder.py``).
"""

from __future__ import annotations

import hashlib
import os
import struct
import time
from pathlib import Path

WAV_HEADER_SIZE = 44
_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")
_MAX_DATA = 0xFFFFFFFF - 36


def wav_header(channels: int, rate: int, sample_width: int, data_bytes: int) -> bytes:
    """The canonical 44-byte PCM WAV header for ``data_bytes`` of sample data."""
    block_align = channels * sample_width
    return _HEADER.pack(
        b"RIFF",
        36 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        1,
        channels,
        rate,
        rate * block_align,
        block_align,
        8 * sample_width,
        b"data",
        data_bytes,
    )


class WavWriter:
    """Append-only PCM WAV writer whose header is rewritten after every append."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        channels: int = 2,
        rate: int = 8000,
        sample_width: int = 2,
        fsync_interval: float | None = 10.0,
    ) -> None:
        self.path = Path(path)
        self.channels = channels
        self.rate = rate
        self.sample_width = sample_width
        self.block_align = channels * sample_width
        self.fsync_interval = fsync_interval
        self.data_bytes = 0
        self._last_sync = time.monotonic()
        self._fd: int | None = os.open(
            self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o640
        )
        os.pwrite(self._fd, self._header(), 0)

    def _header(self) -> bytes:
        return wav_header(self.channels, self.rate, self.sample_width, self.data_bytes)

    @property
    def frames(self) -> int:
        return self.data_bytes // self.block_align

    def append(self, frames: bytes) -> None:
        """Write whole frames after the existing data, then the header that covers them."""
        fd = self._fd
        if fd is None:
            raise ValueError("WAV file is closed")
        if len(frames) % self.block_align:
            raise ValueError("data must be whole frames")
        if not frames:
            return
        if self.data_bytes + len(frames) > _MAX_DATA:
            raise ValueError("WAV data would exceed 4 GiB")
        view = memoryview(frames)
        offset = WAV_HEADER_SIZE + self.data_bytes
        while view:
            written = os.pwrite(fd, view, offset)
            view = view[written:]
            offset += written
        self.data_bytes += len(frames)
        os.pwrite(fd, self._header(), 0)
        interval = self.fsync_interval
        if interval is not None and time.monotonic() - self._last_sync >= interval:
            self.sync()

    def sync(self) -> None:
        if self._fd is not None:
            os.fdatasync(self._fd)
            self._last_sync = time.monotonic()

    def close(self) -> None:
        """Sync and close; the file is complete and valid afterwards."""
        if self._fd is None:
            return
        try:
            self.sync()
        finally:
            os.close(self._fd)
            self._fd = None


def repair(path: str | os.PathLike[str]) -> int:
    """Make the header of a WAV left behind by a crash cover every whole frame on disk.

    Returns the number of frames the file holds afterwards. Drops a trailing partial frame.
    Only canonical 44-byte-header PCM files (those :class:`WavWriter` writes) are touched.
    """
    with open(path, "r+b") as f:
        header = f.read(WAV_HEADER_SIZE)
        if len(header) < WAV_HEADER_SIZE:
            raise ValueError(f"{path}: too short for a WAV header")
        fields = _HEADER.unpack(header)
        if (
            fields[0] != b"RIFF"
            or fields[2] != b"WAVE"
            or fields[3] != b"fmt "
            or fields[11] != b"data"
        ):
            raise ValueError(f"{path}: not a canonical PCM WAV file")
        channels, rate, block_align, bits = fields[6], fields[7], fields[9], fields[10]
        size = f.seek(0, os.SEEK_END)
        data = min((size - WAV_HEADER_SIZE) // block_align * block_align, _MAX_DATA)
        data -= data % block_align
        f.truncate(WAV_HEADER_SIZE + data)
        f.seek(0)
        f.write(wav_header(channels, rate, bits // 8, data))
        f.flush()
        os.fsync(f.fileno())
    return data // block_align


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks (a one-hour recording is 115 MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
