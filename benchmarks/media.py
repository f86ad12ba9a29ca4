"""N concurrent relayed and recorded G.711 calls: loss, lateness, latency and CPU as N grows.

Three processes on loopback:

* this one runs ``RelayEngine`` on uvloop, pinned to CPU 0 when there are two or more CPUs,
  with a ``CallRecorder`` forked on every call (WAVs in a temporary directory);
* a load generator (pinned to the last CPU) sends, for every call, a 172-byte RTP packet
  (12-byte header, 160-byte PCMU payload) every 20 ms from each of the two peer sockets; the
  payload starts with the send time (``time.monotonic()``, one clock for all processes),
  stream number and sequence number;
* a sink (also on the last CPU) receives on the same peer sockets (inherited across fork:
  the relay answers symmetric RTP to the source address, so sender and receiver share a
  socket) and measures relay latency = receive time - embedded send time.

For each N the relay opens N sessions, the streams run ``--warmup`` seconds, then a
``--duration`` window is measured: packets sent in the window, received (lost = sent -
received), received later than 50 ms, latency p50/p99, and the relay process's CPU time
(``resource.getrusage``, all threads: relay loop and recorder executor) per relayed packet and
per call. Then every session closes (recordings finish: SHA-256 and all) before the next N;
``open`` and ``close`` are the wall time per session of opening (with ``set_remote`` and the
recorder fork) and closing them, which bounds the call setup rate.

    .venv/bin/python benchmarks/media.py                     # 100, 200, 400, 500, 800 calls
    .venv/bin/python benchmarks/media.py --calls 800 --no-record
    .venv/bin/python benchmarks/media.py --calls 800 --profile relay.prof
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import math
import multiprocessing as mp
import os
import platform
import resource
import socket
import statistics
import struct
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

import uvloop

from outbound_pro.media.g711 import encode_ulaw
from outbound_pro.media.recorder import RecorderPool
from outbound_pro.rtp.relay import RelayConfig, RelayEngine

PACKET_INTERVAL = 0.02
PAYLOAD = 160
_STAMP = struct.Struct("!dII")
_RTP = struct.Struct("!BBHII")
LATE = 0.050


def _pin(cpu: int) -> str:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {cpu})
        return str(cpu)
    return "-"


def _tone() -> bytes:
    pcm = struct.pack(
        f"<{8000}h", *(int(6000 * math.sin(2 * math.pi * 440 * i / 8000)) for i in range(8000))
    )
    return encode_ulaw(pcm)


# ------------------------------------------------------------------------------- generator


def generator(conn: Connection, socks: list[socket.socket], cpu: int) -> None:
    _pin(cpu)
    tone = _tone()
    packet = struct.Struct("!BBHIIdII")
    while True:
        cmd = conn.recv()
        if cmd is None:
            return
        targets, t_start, t_begin, t_end, t_stop = cmd
        n = len(targets)
        # One buffer per stream: header and stamp are packed into it in place, the tone stays.
        bufs = [bytearray(12 + PAYLOAD) for _ in range(n)]
        for buf in bufs:
            buf[12 + _STAMP.size :] = tone[_STAMP.size : PAYLOAD]
        sends = [(socks[s].sendto, ("127.0.0.1", port)) for s, port in targets]
        seq = [0] * n
        sent_in_window = 0
        errors = 0
        # Stream i sends at t_start + phase_i + k * 20 ms; phases spread evenly over 20 ms.
        phase = [PACKET_INTERVAL * k / n for k in range(n)]
        pack_into = packet.pack_into
        monotonic = time.monotonic
        tick = 0
        while True:
            due = t_start + tick * PACKET_INTERVAL
            if due >= t_stop:
                break
            for i in range(n):
                at = due + phase[i]
                now = monotonic()
                if at - now > 0.0002:
                    time.sleep(at - now)
                    now = monotonic()
                s = seq[i]
                buf = bufs[i]
                pack_into(buf, 0, 0x80, 0, s & 0xFFFF, (s * PAYLOAD) & 0xFFFFFFFF, i + 1, now, i, s)
                sendto, addr = sends[i]
                try:
                    sendto(buf, addr)
                except OSError:
                    errors += 1
                    continue
                if t_begin <= now < t_end:
                    sent_in_window += 1
                seq[i] = s + 1
            tick += 1
        conn.send((sent_in_window, errors))


# ------------------------------------------------------------------------------------ sink


def sink(conn: Connection, socks: list[socket.socket], cpu: int, poll: float) -> None:
    """Drain every peer socket each ``poll`` seconds instead of sleeping in epoll.

    A sink blocked in epoll makes every datagram the relay sends wake it, and on loopback
    that wake-up (an inter-processor interrupt, a VM exit here) is charged to the relay's CPU:
    a cost a relay sending to a NIC does not pay. Polling keeps that artefact out of the
    relay's figures and halves the sink's own CPU, at the price of up to ``poll`` seconds
    added to each measured latency (one timestamp per drained socket).
    """
    _pin(cpu)
    receivers = [s.recv_into for s in socks]
    buf = bytearray(2048)
    monotonic = time.monotonic
    unpack = _STAMP.unpack_from
    while True:
        cmd = conn.recv()
        if cmd is None:
            return
        t_begin, t_end, t_stop = cmd
        latencies: list[float] = []
        received = late = 0
        tick = monotonic()
        while tick < t_stop:
            for recv_into in receivers:
                now = monotonic()
                while True:
                    try:
                        recv_into(buf)
                    except OSError:
                        break
                    sent = unpack(buf, 12)[0]
                    if t_begin <= sent < t_end:
                        received += 1
                        delay = now - sent
                        latencies.append(delay)
                        if delay > LATE:
                            late += 1
            tick += poll
            pause = tick - monotonic()
            if pause > 0:
                time.sleep(pause)
            else:
                tick = monotonic()
        latencies.sort()
        p50 = latencies[len(latencies) // 2] if latencies else math.nan
        p99 = latencies[int(len(latencies) * 0.99)] if latencies else math.nan
        conn.send((received, late, p50, p99, max(latencies, default=math.nan)))


# ----------------------------------------------------------------------------------- relay


async def wait_quiet(ours: set[int], limit: float = 120.0) -> float:
    """Wait (up to ``limit`` s) until other processes use under 10 % of a CPU, so that
    someone else's test run does not land in the measurement window; returns the wait."""
    began = time.monotonic()
    while time.monotonic() - began < limit:
        before = _foreign_ticks(ours)
        await asyncio.sleep(1.0)
        if _foreign_pct(before, _foreign_ticks(ours), 1.0) < 10.0:
            break
    return time.monotonic() - began


async def run_step(
    engine: RelayEngine,
    calls: int,
    peer_ports: list[int],
    gen: Connection,
    snk: Connection,
    args: argparse.Namespace,
    outdir: Path,
) -> dict[str, float]:
    waited = await wait_quiet(args.ours) if args.wait_quiet else 0.0
    pool = RecorderPool()
    sessions = []
    opening = time.monotonic()
    for c in range(calls):
        session = await engine.open_session(f"bench-{calls}-{c}")
        session.set_remote("a", "127.0.0.1", peer_ports[(2 * c) % len(peer_ports)])
        session.set_remote("b", "127.0.0.1", peer_ports[(2 * c + 1) % len(peer_ports)])
        if not args.no_record:
            session.fork(pool.recorder(outdir / f"{calls}-{c}.wav", fsync_interval=args.fsync))
        sessions.append(session)
    open_time = time.monotonic() - opening
    targets = []
    for c, session in enumerate(sessions):
        targets.append(((2 * c) % len(peer_ports), session.leg_a.local_port))
        targets.append(((2 * c + 1) % len(peer_ports), session.leg_b.local_port))
    t_start = time.monotonic() + 0.3
    t_begin = t_start + args.warmup
    t_end = t_begin + args.duration
    t_stop = t_end + 0.3
    gen.send((targets, t_start, t_begin, t_end, t_stop))
    snk.send((t_begin, t_end, t_stop + 0.5))
    await asyncio.sleep(t_begin - time.monotonic())
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    c0 = _cpu_ticks()
    f0 = _foreign_ticks(args.ours)
    w0 = time.monotonic()
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    await asyncio.sleep(t_end - time.monotonic())
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    c1 = _cpu_ticks()
    f1 = _foreign_ticks(args.ours)
    wall = time.monotonic() - w0
    await asyncio.sleep(max(0.0, t_stop + 0.6 - time.monotonic()))
    loop = asyncio.get_running_loop()
    sent, send_errors = await loop.run_in_executor(None, gen.recv)
    received, late, p50, p99, worst = await loop.run_in_executor(None, snk.recv)
    closing = time.monotonic()
    stats = [await s.close() for s in sessions]
    close_time = time.monotonic() - closing
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    relayed = received
    recorded = [s.recording for s in stats if s.recording is not None]
    return {
        "calls": calls,
        "sent": sent,
        "lost_pct": 100.0 * max(0, sent - received) / sent if sent else math.nan,
        "late_pct": 100.0 * late / sent if sent else math.nan,
        "p50_ms": 1000 * p50,
        "p99_ms": 1000 * p99,
        "max_ms": 1000 * worst,
        "cpu_pct": 100.0 * cpu / wall,
        "core0_pct": _busy(c0, c1, 0),
        "gen_core_pct": _busy(c0, c1, (os.cpu_count() or 1) - 1),
        "other_pct": _foreign_pct(f0, f1, wall),
        "us_per_packet": 1e6 * cpu / relayed if relayed else math.nan,
        "ms_per_call_s": 1000 * cpu / wall / calls,
        "send_errors": send_errors,
        "rec_errors": sum(1 for r in recorded if r.error),
        "rec_late": sum(r.late_packets for r in recorded),
        "open_us": 1e6 * open_time / calls,
        "close_us": 1e6 * close_time / calls,
        "waited_s": waited,
    }


def _big_buffers(sock: socket.socket) -> None:
    """Peer sockets carry many streams each: give them 4 MiB so the sink never drops."""
    for force, plain in ((33, socket.SO_RCVBUF), (32, socket.SO_SNDBUF)):  # SO_*BUFFORCE
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, 4 << 20)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, plain, 4 << 20)


def _foreign_ticks(ours: set[int]) -> dict[int, int]:
    """CPU jiffies used so far by every process but ours, by pid: other work on a shared
    machine spoils a run, and the ``other%`` column says when it did."""
    ticks = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in ours:
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
    return ticks


def _foreign_pct(before: dict[int, int], after: dict[int, int], wall: float) -> float:
    used = sum(t - before.get(pid, 0) for pid, t in after.items())
    return 100.0 * used / os.sysconf("SC_CLK_TCK") / wall


def _cpu_ticks() -> dict[str, tuple[int, int]]:
    """(busy, total) jiffies per CPU. On the relay's CPU busy includes softirq work that the
    kernel does for the relay's sends but charges to no process (and anything else running
    there); on the generator's it shows whether the load generator itself kept up."""
    ticks = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3].isdigit():
            name, *fields = line.split()
            v = [int(x) for x in fields]
            ticks[name] = (sum(v[:8]) - v[3] - v[4], sum(v[:8]))
    return ticks


def _busy(c0: dict[str, tuple[int, int]], c1: dict[str, tuple[int, int]], cpu: int) -> float:
    name = f"cpu{cpu}"
    if name not in c0 or name not in c1:
        return math.nan
    return 100.0 * (c1[name][0] - c0[name][0]) / max(1, c1[name][1] - c0[name][1])


def machine() -> str:
    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"nproc={os.cpu_count()} cpu={model!r} python={platform.python_version()} "
        f"uvloop={uvloop.__version__} kernel={platform.release()}"
    )


# (row key, header, width, format) of the printed table.
COLUMNS = [
    ("calls", "calls", 6, "d"),
    ("sent", "sent", 8, "d"),
    ("lost_pct", "lost%", 7, ".3f"),
    ("late_pct", "late%", 7, ".3f"),
    ("p50_ms", "p50ms", 7, ".2f"),
    ("p99_ms", "p99ms", 7, ".2f"),
    ("max_ms", "maxms", 7, ".1f"),
    ("cpu_pct", "cpu%", 6, ".1f"),
    ("core0_pct", "core%", 6, ".1f"),
    ("gen_core_pct", "gen%", 6, ".1f"),
    ("us_per_packet", "us/pkt", 7, ".2f"),
    ("ms_per_call_s", "ms/call", 8, ".3f"),
    ("other_pct", "other%", 6, ".1f"),
    ("rec_late", "rlate", 6, "d"),
    ("open_us", "open", 6, ".0f"),
    ("close_us", "close", 6, ".0f"),
    ("waited_s", "quiet", 6, ".0f"),
]


def _format(row: dict[str, float]) -> str:
    return " ".join(f"{row[k]:>{w}{f}}" for k, _, w, f in COLUMNS)


async def relay_main(
    args: argparse.Namespace, gen: Connection, snk: Connection, ports: list[int]
) -> None:
    engine = RelayEngine(
        RelayConfig(
            host="127.0.0.1",
            port_min=args.port_min,
            port_max=args.port_min + 9999,
            poll_interval=args.poll,
        )
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="media-bench-") as tmp:
        for calls in args.calls:
            for _ in range(args.repeat):
                for attempt in range(args.retries + 1):
                    row = await run_step(engine, calls, ports, gen, snk, args, Path(tmp))
                    clean = row["other_pct"] <= args.max_other
                    last = attempt == args.retries
                    print(
                        _format(row)
                        + ("" if clean else "  noisy")
                        + ("" if clean or last else ", retried"),
                        flush=True,
                    )
                    if clean or last:
                        rows.append(row)
                        break
    await engine.close()
    if args.repeat > 1:
        print("medians:")
        for calls in args.calls:
            group = [r for r in rows if r["calls"] == calls]
            med = {k: statistics.median(r[k] for r in group) for k in group[0]}
            print(
                f"{calls:>6} lost {med['lost_pct']:.3f}% late {med['late_pct']:.3f}% "
                f"p50 {med['p50_ms']:.2f} ms p99 {med['p99_ms']:.2f} ms cpu {med['cpu_pct']:.1f}% "
                f"{med['us_per_packet']:.2f} us/packet {med['ms_per_call_s']:.3f} ms/call-s"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--calls", type=lambda s: [int(x) for x in s.split(",")], default=[100, 200, 400, 500, 800]
    )
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument(
        "--poll",
        type=float,
        default=RelayConfig().poll_interval,
        help="RelayConfig.poll_interval, s; 0 wakes the loop per datagram",
    )
    parser.add_argument(
        "--fsync",
        type=lambda v: None if v == "none" else float(v),
        default=10.0,
        help="recorder fdatasync interval in seconds, or 'none' (default 10, the product's)",
    )
    parser.add_argument("--profile", metavar="FILE", help="cProfile the relay during the window")
    parser.add_argument("--port-min", type=int, default=20000)
    parser.add_argument("--peer-sockets", type=int, default=16)
    parser.add_argument("--sink-poll", type=float, default=0.0005, help="sink drain period, s")
    parser.add_argument(
        "--max-other",
        type=float,
        default=10.0,
        help="a window in which other processes used more CPU than this (%% of one) is noisy",
    )
    parser.add_argument("--retries", type=int, default=3, help="re-runs of a noisy window")
    parser.add_argument(
        "--no-wait-quiet",
        dest="wait_quiet",
        action="store_false",
        help="do not wait for other processes to go quiet before each measurement",
    )
    args = parser.parse_args()

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ncpu = os.cpu_count() or 1
    socks = []
    for _ in range(args.peer_sockets):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        _big_buffers(s)
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    ctx = mp.get_context("fork")
    gen_a, gen_b = ctx.Pipe()
    snk_a, snk_b = ctx.Pipe()
    other = ncpu - 1
    procs = [
        ctx.Process(target=generator, args=(gen_b, socks, other), daemon=True),
        ctx.Process(target=sink, args=(snk_b, socks, other, args.sink_poll), daemon=True),
    ]
    for p in procs:
        p.start()
    args.ours = {os.getpid(), os.getppid(), *(p.pid for p in procs if p.pid is not None)}
    for s in socks:
        s.close()
    relay_cpu = _pin(0)
    print(f"# media benchmark: {machine()}")
    print(
        f"# relay poll={args.poll} record={not args.no_record} cpu={relay_cpu};"
        f" generator+sink cpu={other if ncpu > 1 else '-'};"
        f" {args.warmup:.0f} s warm-up, {args.duration:.0f} s window"
    )
    print(" ".join(f"{h:>{w}}" for _, h, w, _ in COLUMNS))
    try:
        uvloop.run(relay_main(args, gen_a, snk_a, ports))
    finally:
        gen_a.send(None)
        snk_a.send(None)
        for p in procs:
            p.join(5)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
