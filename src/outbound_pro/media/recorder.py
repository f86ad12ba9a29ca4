"""Call recorder: one stereo 16-bit 8 kHz WAV per call — leg A (booth) left, leg B right.

Where samples go. Both channels share one wall-clock origin, ``start`` (``time.monotonic()``
when the recording began). Each stream is anchored when its first packet arrives: that
packet's RTP timestamp is placed at the frame of its arrival time, and every later packet of
the same SSRC at ``anchor_frame + (timestamp - anchor_timestamp)`` (mod 2**32). Placement by
RTP timestamp keeps speech contiguous whatever the network jitter, and gaps (loss, silence
suppression, hold) stay silent because the buffers start as silence. The stream is re-anchored
to the arrival time when the SSRC changes or the timestamp jumps more than ``jump`` seconds
away from the arrival time (a restarted sender, a re-INVITE to another device).

Why there is no drift over an hour: the sender's clock is not ours. A phone whose 8 kHz clock
is 100 ppm fast would slide 0.36 s against the other channel by the end of an hour. So for
each stream the recorder keeps the smallest ``arrival - placement`` offset seen in each
``drift_window`` (the least-delayed packet, free of jitter), and when it exceeds ``drift``
seconds either way the anchor moves by that much: the channel stays within ``drift`` of the
wall clock, and so within ``2 * drift`` of the other channel, for any call length.

What is recorded. PCMU and PCMA are decoded; RFC 4733 events and comfort noise are skipped;
any other payload (G.722, Opus, ...) is relayed untouched by the relay but recorded as silence
and counted in ``RecordingInfo.non_g711_packets`` — transcoding for the recording comes later.

Cost. The relay calls the recorder's tap per datagram (``_Side.place``): one header unpack,
the placement arithmetic and one slice assignment of the raw G.711 codes into a buffer that
starts as μ-law silence (0xFF, which decodes to exactly 0). Decoding happens a second at a
time in ``StereoMixer.take`` with ``bytes.translate`` (see ``g711.py``); A-law stretches are
remembered as frame ranges and re-decoded with the A-law tables; interleaving into stereo is
four strided slice assignments.

Not blocking the loop (architecture principle 2). One :class:`RecorderPool` per process ticks
25 times a second; each recording is due about once a second (staggered), when its audio up
to ``now - lag`` is taken from the mixer on the loop and queued; the queue goes to an executor
thread as one job that appends every chunk to its WAV. ``lag`` covers reordering and the
re-anchoring window, so the file trails the call by ``lag`` plus up to a second, and a SIGKILL
loses at most that much: see ``wav.py`` for why the file is a valid WAV at every instant.

No RTP, no file. A recording starts when the first audio of a call that carried RTP is handed
to the writer: until a packet has reached the tap nothing is taken from the mixer (its
buffers stay empty, so nothing accumulates), and a call that never carried RTP ends without
creating, syncing or hashing a file — at high call rates the empty WAV of every unanswered or
silent call cost more than the call's signalling. ``on_start`` is called on the loop just
before that first audio is queued, so the owner can index the recording before any of it can
reach the disk (see ``b2bua``); the first chunk still begins at the recording's ``start``, so
the channels keep their alignment to the wall clock.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from pathlib import Path

import msgspec

from outbound_pro.media.g711 import ALAW_HI, ALAW_LO, ULAW_HI, ULAW_LO, ULAW_SILENCE
from outbound_pro.media.wav import WavWriter, sha256_file

log = logging.getLogger("outbound_pro.media.recorder")

RATE = 8000
_HEADER = struct.Struct("!BBHII")
_SILENCE = bytes((ULAW_SILENCE,)) * RATE
_FAR = 1 << 62


def _silence(frames: int) -> bytes:
    return bytes((ULAW_SILENCE,)) * frames


# What the second RTP header byte (marker + payload type) is to the recorder. Ordered so
# that one comparison (``kind > _ALAW``) separates audio from the rest.
_ULAW, _ALAW, _OTHER, _SKIP = 0, 1, 2, 3


class RecordingInfo(msgspec.Struct, kw_only=True):
    """What the CDR and the recordings index keep about one recording."""

    path: str
    duration: float
    size: int
    sha256: str
    frames: int
    packets: int
    non_g711_packets: int
    late_packets: int
    reanchors: int
    drift_corrections: int
    error: str | None = None


def _kinds(rtpmap: Mapping[int, str] | None) -> list[int]:
    """Kind by second header byte (read-only, shared by the recordings of one rtpmap)."""
    return _kinds_of(tuple(sorted((rtpmap or {}).items())))


@functools.lru_cache(maxsize=64)
def _kinds_of(rtpmap: tuple[tuple[int, str], ...]) -> list[int]:
    """Both marker values of each payload type, and RTCP-mux packet types 200-204 (which land
    on marker + 72..76) as not-audio. Cached: nearly every call offers the same rtpmap, and
    building the table was a third of a recorder's creation."""
    kinds = [_OTHER] * 128
    kinds[0] = _ULAW
    kinds[8] = _ALAW
    kinds[13] = _SKIP
    for pt, value in rtpmap:
        name = value.partition("/")[0].strip().upper()
        kinds[pt] = {"PCMU": _ULAW, "PCMA": _ALAW, "TELEPHONE-EVENT": _SKIP, "CN": _SKIP}.get(
            name, _OTHER
        )
    by_byte = kinds + kinds
    for b1 in range(200, 205):
        by_byte[b1] = _SKIP
    return by_byte


class _Side:
    """Placement state and G.711 code buffer of one channel; ``place`` is the per-packet tap."""

    __slots__ = (
        "alaw_runs",
        "anchor_frame",
        "anchor_ts",
        "base",
        "codes",
        "drift",
        "drift_corrections",
        "filled",
        "jump",
        "kinds",
        "late",
        "min_offset",
        "non_g711",
        "packets",
        "reanchors",
        "ssrc",
        "start",
        "window",
        "window_end",
    )

    def __init__(self, start: float, kinds: list[int], jump: int, drift: int, window: int) -> None:
        self.start = start
        self.kinds = kinds
        self.jump = jump
        self.drift = drift
        self.window = window
        self.base = 0  # frame of codes[0]; the mixer moves it on every take
        self.codes = bytearray()
        self.filled = 0  # codes[:filled] has been placed; beyond is silence grown ahead
        self.alaw_runs: list[list[int]] = []
        self.ssrc = -1
        self.anchor_ts = 0
        self.anchor_frame = 0
        self.min_offset = _FAR
        self.window_end = -_FAR
        self.packets = 0
        self.non_g711 = 0
        self.late = 0
        self.reanchors = 0
        self.drift_corrections = 0

    def place(self, data: bytes, arrival: float) -> None:
        """Put one datagram's G.711 codes where its timestamp says (see the module doc)."""
        size = len(data)
        if size < 12:
            return
        b0, b1, _seq, ts, ssrc = _HEADER.unpack_from(data)
        kind = self.kinds[b1]
        if kind > _ALAW:
            if kind == _OTHER and b0 & 0xC0 == 0x80:
                self.non_g711 += 1
            return
        if b0 == 0x80:  # no padding, extension or CSRC: the usual packet
            head = 12
            end = size
        else:
            if b0 & 0xC0 != 0x80:
                return
            head = 12 + ((b0 & 0x0F) << 2)
            if b0 & 0x10:
                if size < head + 4:
                    return
                head += 4 + (((data[head + 2] << 8) | data[head + 3]) << 2)
            end = size - data[-1] if b0 & 0x20 else size
        n = end - head
        if n <= 0:
            return
        self.packets += 1
        arrival_frame = int((arrival - self.start) * RATE + 0.5)
        if ssrc != self.ssrc:
            if self.ssrc != -1:
                self.reanchors += 1
            self.ssrc = ssrc
            self.anchor_ts = ts
            self.anchor_frame = arrival_frame
            self.window_end = arrival_frame + self.window
            self.min_offset = _FAR
        frame = self.anchor_frame + (((ts - self.anchor_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000)
        offset = arrival_frame - frame
        if offset > self.jump or offset < -self.jump:
            self.reanchors += 1
            self.anchor_ts = ts
            self.anchor_frame = frame = arrival_frame
            offset = 0
        if offset < self.min_offset:
            self.min_offset = offset
        if arrival_frame >= self.window_end:
            low = self.min_offset
            if low > self.drift or low < -self.drift:
                self.anchor_frame += low
                self.drift_corrections += 1
            self.min_offset = _FAR
            self.window_end = arrival_frame + self.window
        codes = self.codes
        idx = frame - self.base
        if idx < 0:
            self.late += 1
            if idx + n <= 0:
                return
            head -= idx
            n += idx
            frame -= idx
            idx = 0
        stop = idx + n
        if stop > len(codes):  # grow a second ahead at a time, not a packet
            codes.extend(_SILENCE if stop - len(codes) <= RATE else _silence(stop - len(codes)))
        codes[idx:stop] = data[head:end]
        if stop > self.filled:
            self.filled = stop
        if kind == _ALAW:
            runs = self.alaw_runs
            if runs and runs[-1][1] == frame:
                runs[-1][1] = frame + n
            else:
                runs.append([frame, frame + n])


class StereoMixer:
    """Sans-I/O core of the recorder: packets with arrival times in, stereo PCM frames out.

    ``sides[0].place`` / ``sides[1].place`` take one datagram of leg A / leg B (the relay
    calls them per packet; ``add`` is the batch form); ``take(until)`` returns the interleaved
    16-bit frames from the last take up to the frame of time ``until`` (everything placed if
    ``None``) and forgets them. Packets that land before the last take are counted as late
    (their part before it is dropped). Times are seconds on the clock of ``start``.
    """

    def __init__(
        self,
        start: float,
        *,
        rtpmap: Mapping[int, str] | None = None,
        jump: float = 0.5,
        drift: float = 0.04,
        drift_window: float = 5.0,
    ) -> None:
        self.start = start
        self.base = 0
        kinds = _kinds(rtpmap)
        self.sides = tuple(
            _Side(start, kinds, int(jump * RATE), int(drift * RATE), int(drift_window * RATE))
            for _ in range(2)
        )

    def add(self, side: int, packets: Sequence[bytes], arrivals: Sequence[float]) -> None:
        place = self.sides[side].place
        for data, arrival in zip(packets, arrivals, strict=True):
            place(data, arrival)

    def take(self, until: float | None) -> tuple[int, bytes]:
        """Stereo frames from ``base`` to the frame of ``until``; returns (first frame, bytes)."""
        base = self.base
        if until is None:
            end = base + max(s.filled for s in self.sides)
        else:
            end = int((until - self.start) * RATE + 0.5)
        n = end - base
        if n <= 0:
            return base, b""
        out = bytearray(4 * n)
        for channel, st in enumerate(self.sides):
            codes = st.codes
            if len(codes) < n:
                codes.extend(_silence(n - len(codes)))
            chunk = codes[:n]
            del codes[:n]
            st.filled = max(0, st.filled - n)
            st.base = end
            lo = chunk.translate(ULAW_LO)
            hi = chunk.translate(ULAW_HI)
            if st.alaw_runs:
                keep = []
                for first, last in st.alaw_runs:
                    a, b = max(first, base) - base, min(last, end) - base
                    if b > a:
                        piece = chunk[a:b]
                        lo[a:b] = piece.translate(ALAW_LO)
                        hi[a:b] = piece.translate(ALAW_HI)
                    if last > end:
                        keep.append([max(first, end), last])
                st.alaw_runs = keep
            out[2 * channel :: 4] = lo
            out[2 * channel + 1 :: 4] = hi
        self.base = end
        return base, bytes(out)


class RecorderPool:
    """Flushes every recording of a process with one timer and one writer job at a time.

    A timer per call and an executor hand-off per call and second cost more than the audio
    itself at 800 calls (each hand-off wakes a thread), so the pool ticks ``ticks_per_second``
    times a second, takes the due recordings' audio out of their mixers (on the loop), and
    hands all of it to the executor as one job that appends each chunk to its file. Chunks of
    one recording are written in order: there is never more than one job in flight, and what
    is taken meanwhile waits for the next.
    """

    def __init__(
        self,
        *,
        executor: Executor | None = None,
        flush_interval: float = 1.0,
        ticks_per_second: float = 25.0,
    ) -> None:
        self.flush_interval = flush_interval
        self._tick = 1.0 / ticks_per_second
        self._executor = executor
        self._members: list[CallRecorder] = []
        self._pending: list[tuple[CallRecorder, bytes]] = []
        self._job: asyncio.Future[list[tuple[CallRecorder, str]]] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def recorder(
        self,
        path: str | os.PathLike[str],
        *,
        start: float | None = None,
        lag: float = 1.0,
        fsync_interval: float | None = 10.0,
        rtpmap: Mapping[int, str] | None = None,
        on_start: Callable[[], None] | None = None,
    ) -> CallRecorder:
        return CallRecorder(
            path,
            start=start,
            lag=lag,
            fsync_interval=fsync_interval,
            rtpmap=rtpmap,
            pool=self,
            on_start=on_start,
        )

    def _join(self, rec: CallRecorder) -> None:
        loop = asyncio.get_running_loop()
        # Spread first flushes over an interval so calls answered together flush apart.
        rec.next_flush = time.monotonic() + self.flush_interval * (0.5 + random.random())
        self._members.append(rec)
        if self._timer is None:
            self._timer = loop.call_later(self._tick, self._on_timer, loop)

    def _leave(self, rec: CallRecorder) -> list[bytes]:
        """Stop flushing ``rec``; return its chunks that no job has taken yet."""
        if rec in self._members:
            self._members.remove(rec)
        mine = [data for r, data in self._pending if r is rec]
        self._pending = [(r, data) for r, data in self._pending if r is not rec]
        if not self._members and self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return mine

    def _on_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = loop.call_later(self._tick, self._on_timer, loop)
        now = time.monotonic()
        for rec in self._members:
            if rec.next_flush <= now:
                rec.next_flush += self.flush_interval
                self._take(rec, now - rec.lag)
        self._submit()

    def _take(self, rec: CallRecorder, until: float | None) -> None:
        if rec.error is None and (rec.started or rec.carried_media):
            data = rec.mixer.take(until)[1]
            if data:
                rec._begin()
                self._pending.append((rec, data))

    def _submit(self) -> None:
        if self._job is None and self._pending:
            batch, self._pending = self._pending, []
            loop = asyncio.get_running_loop()
            self._job = loop.run_in_executor(self._executor, _write_batch, batch)
            self._job.add_done_callback(self._job_done)

    def _job_done(self, job: asyncio.Future[list[tuple[CallRecorder, str]]]) -> None:
        self._job = None
        if not job.cancelled():
            for rec, error in job.result():
                rec._fail(error)
        self._submit()

    async def _drain(self) -> None:
        job = self._job
        if job is not None:
            await asyncio.wait([job])


def _write_batch(batch: list[tuple[CallRecorder, bytes]]) -> list[tuple[CallRecorder, str]]:
    """Executor side of a pool flush: append each chunk; failures are returned, not raised."""
    errors = []
    for rec, data in batch:
        if rec._write_failed:
            continue
        try:
            rec._append(data)
        except (OSError, ValueError) as exc:
            rec._write_failed = True
            errors.append((rec, f"{type(exc).__name__}: {exc}"))
    return errors


class CallRecorder:
    """Records one call to ``path``; fed per packet by the relay on the event loop.

    ``tap(side)`` gives the per-datagram callable for leg A (0, left) or leg B (1, right): it
    only places G.711 codes in memory (``_Side.place``). Its :class:`RecorderPool` takes the
    audio up to ``now - lag`` out of the mixer about every ``flush_interval`` (on the loop:
    the mixer is never touched by two threads) and appends it to the WAV in an executor
    thread. ``close()`` writes the rest, syncs, hashes and returns :class:`RecordingInfo`. A
    write error (disk full) stops the recording, never the call: it is logged once and
    reported in ``RecordingInfo.error``. Without a ``pool`` the recorder gets one of its own.
    A call that carried no RTP creates no file (``RecordingInfo.size`` 0, ``sha256`` empty);
    ``on_start`` is called once, on the loop, before the first audio is written (module doc).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        start: float | None = None,
        lag: float = 1.0,
        fsync_interval: float | None = 10.0,
        rtpmap: Mapping[int, str] | None = None,
        pool: RecorderPool | None = None,
        on_start: Callable[[], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.on_start = on_start
        self.started = False  # audio has been queued for the file (it exists, or will)
        self.start = time.monotonic() if start is None else start
        self.lag = lag
        self.pool = pool if pool is not None else RecorderPool()
        self.mixer = StereoMixer(self.start, rtpmap=rtpmap)
        self.next_flush = 0.0
        self.error: str | None = None
        self._fsync_interval = fsync_interval
        self._writer: WavWriter | None = None
        self._write_failed = False  # executor-side twin of ``error``
        self._joined = False
        self._closed = False

    @property
    def carried_media(self) -> bool:
        """Whether any RTP packet (audio or not) has reached the tap."""
        return any(s.packets or s.non_g711 for s in self.mixer.sides)

    def _begin(self) -> None:
        if not self.started:
            self.started = True
            if self.on_start is not None:
                try:
                    self.on_start()
                except Exception:  # the owner's bookkeeping must not stop the recording
                    log.exception("recording start callback failed", extra={"path": str(self.path)})

    @property
    def frames_written(self) -> int:
        return self._writer.frames if self._writer is not None else 0

    def _join(self) -> None:
        if not self._joined and not self._closed:
            self._joined = True
            self.pool._join(self)

    def tap(self, side: int) -> Callable[[bytes, float], None]:
        """The per-packet callable for one side; the pool starts flushing this recording."""
        self._join()
        return self.mixer.sides[side].place

    def feed(self, side: int, packets: Sequence[bytes], arrivals: Sequence[float]) -> None:
        """Batch form of ``tap(side)`` (for callers that are not the relay)."""
        if not self._closed:
            self._join()
            self.mixer.add(side, packets, arrivals)

    def flush(self, now: float) -> None:
        """Flush now rather than on the pool's schedule: audio up to ``now - lag`` (nothing
        before the first RTP packet: see "No RTP, no file" in the module doc)."""
        if not self._closed:
            self.pool._take(self, now - self.lag)
            self.pool._submit()

    def _fail(self, error: str) -> None:
        if self.error is None:
            self.error = error
            log.error("recording failed", extra={"path": str(self.path), "error": error})

    def _append(self, data: bytes) -> None:
        """Executor side: open the file on first use, append whole frames."""
        writer = self._writer
        if writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            writer = self._writer = WavWriter(self.path, fsync_interval=self._fsync_interval)
        writer.append(data)

    def _finish(self, chunks: list[bytes]) -> RecordingInfo:
        error = self.error
        if error is None and not self._write_failed:
            try:
                for data in chunks:
                    self._append(data)
            except (OSError, ValueError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                log.error("recording failed", extra={"path": str(self.path), "error": error})
        writer = self._writer
        frames = 0
        if writer is not None:
            frames = writer.frames
            try:
                writer.close()
            except OSError as exc:
                error = error or f"{type(exc).__name__}: {exc}"
        size = self.path.stat().st_size if writer is not None and self.path.exists() else 0
        return self._info(frames, size, sha256_file(self.path) if size else "", error)

    def _info(self, frames: int, size: int, digest: str, error: str | None) -> RecordingInfo:
        sides = self.mixer.sides
        return RecordingInfo(
            path=str(self.path),
            duration=frames / RATE,
            size=size,
            sha256=digest,
            frames=frames,
            packets=sum(s.packets for s in sides),
            non_g711_packets=sum(s.non_g711 for s in sides),
            late_packets=sum(s.late for s in sides),
            reanchors=sum(s.reanchors for s in sides),
            drift_corrections=sum(s.drift_corrections for s in sides),
            error=error,
        )

    async def close(self) -> RecordingInfo:
        """Write everything still held, close the file; path, duration, size, SHA-256.

        A call that carried no RTP returns at once: no file, no executor round trip."""
        self._closed = True
        chunks = self.pool._leave(self)
        if not self.started and not self.carried_media:
            return self._info(0, 0, "", self.error)
        await self.pool._drain()  # a job in flight may hold earlier chunks of ours
        if self.error is None:
            data = self.mixer.take(None)[1]
            if data:
                self._begin()
                chunks.append(data)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool._executor, self._finish, chunks)
