"""N concurrent WebRTC calls through the gateway, bridged to a plain-RTP echo sink.

    .venv/bin/python benchmarks/webrtc.py [--calls 100] [--codec PCMU|opus] [--seconds 20]
                                          [--client-procs 2]

Layout, so the CPU figure is the gateway's and not the load's:

* a **gateway process** (this file with ``--serve``) runs `WebRtcGateway` and an echo sink on
  one event loop (uvloop); the sink returns every plain RTP packet to the leg it came from, so
  media flows browser → gateway → sink → gateway → browser. It takes offers over a local TCP
  control socket (one JSON line each way) and reports its own CPU time;
* **client processes** run aiortc `RTCPeerConnection`s as the browsers: a 48 kHz tone track
  sending, the received track decoded. ``--codec PCMU`` offers only PCMU (the gateway only
  decrypts and re-encrypts); ``--codec opus`` offers only Opus (the gateway transcodes to
  PCMU for the sink and back).

Printed: the gateway's CPU per call (percent of one core, over the measured window, after all
calls are connected), and loss both ways: browser → sink from the clients' ``packetsSent``
against what the gateway forwarded, and sink → browser from the clients' inbound
``packetsLost`` / ``packetsReceived``. Target (issue 6): 100 G.711 calls and 30 Opus calls
under 0.5 % loss on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import math
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


# -- gateway process ---------------------------------------------------------------------------


async def serve() -> None:
    from outbound_pro.webrtc import WebRtcGateway

    gateway = WebRtcGateway("127.0.0.1")
    loop = asyncio.get_running_loop()

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.transport.sendto(data, addr)  # type: ignore[attr-defined]

    sink, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    sink_addr = sink.get_extra_info("sockname")[:2]

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            request = json.loads(line)
            if "offer" in request:
                leg = await gateway.accept_offer(request["offer"])
                leg.set_plain_remote(sink_addr)
                reply: dict[str, Any] = {"answer": leg.answer_sdp}
            else:
                legs = list(gateway.legs)
                reply = {
                    "cpu": time.process_time(),
                    "wall": time.monotonic(),
                    "connected": sum(1 for leg in legs if leg.state == "connected"),
                    "to_plain": sum(leg.packets_to_plain for leg in legs),
                    "to_webrtc": sum(leg.packets_to_webrtc for leg in legs),
                }
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()

    server = await asyncio.start_server(client, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


# -- client processes --------------------------------------------------------------------------


def client_main(port: int, calls: int, codec: str, seconds: float, out: mp.Queue) -> None:
    import uvloop

    uvloop.run(_clients(port, calls, codec, seconds, out))


async def _clients(port: int, calls: int, codec: str, seconds: float, out: mp.Queue) -> None:
    import av
    import numpy as np
    from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
    from aiortc.rtcrtpsender import RTCRtpSender

    class Tone(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.pts = 0
            self.start: float | None = None
            t = np.arange(960) / 48000
            self.samples = (8000 * np.sin(2 * math.pi * 1000 * t)).astype(np.int16).reshape(1, -1)

        async def recv(self) -> av.AudioFrame:
            loop = asyncio.get_running_loop()
            if self.start is None:
                self.start = loop.time()
            wait = self.start + self.pts / 48000 - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            frame = av.AudioFrame.from_ndarray(self.samples, format="s16", layout="mono")
            frame.sample_rate = 48000
            frame.pts = self.pts
            frame.time_base = fractions.Fraction(1, 48000)
            self.pts += 960
            return frame

    async def drain(track: MediaStreamTrack) -> None:
        while True:
            try:
                await track.recv()
            except Exception:
                return

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lock = asyncio.Lock()
    pcs: list[RTCPeerConnection] = []
    drains: list[asyncio.Task[None]] = []

    async def one() -> None:
        pc = RTCPeerConnection()
        pcs.append(pc)
        pc.on("track", lambda track: drains.append(asyncio.ensure_future(drain(track))))
        transceiver = pc.addTransceiver(Tone(), direction="sendrecv")
        caps = RTCRtpSender.getCapabilities("audio").codecs
        transceiver.setCodecPreferences([c for c in caps if c.mimeType == f"audio/{codec}"])
        await pc.setLocalDescription(await pc.createOffer())
        async with lock:
            writer.write(json.dumps({"offer": pc.localDescription.sdp}).encode() + b"\n")
            answer = json.loads(await reader.readline())["answer"]
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    await asyncio.gather(*(one() for _ in range(calls)))
    out.put(("ready", calls))
    await asyncio.sleep(seconds)
    sent = received = lost = 0
    for pc in pcs:
        for sender in pc.getSenders():
            if sender.track is not None:
                sender.track.stop()
    await asyncio.sleep(0.5)  # the last packets in flight
    for pc in pcs:
        report = await pc.getStats()
        for stat in report.values():
            if stat.type == "outbound-rtp":
                sent += stat.packetsSent
            elif stat.type == "inbound-rtp":
                received += stat.packetsReceived
                lost += max(0, stat.packetsLost)
    out.put(("stats", {"sent": sent, "received": received, "lost": lost}))
    for pc in pcs:
        await pc.close()


# -- driver --------------------------------------------------------------------------------------


def query(port: int) -> dict[str, Any]:
    import socket

    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b'{"stats": true}\n')
        return json.loads(s.makefile().readline())


def run(calls: int, codec: str, seconds: float, procs: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    gateway = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert gateway.stdout is not None
        port = int(gateway.stdout.readline())
        queue: mp.Queue = mp.Queue()
        shares = [calls // procs + (1 if i < calls % procs else 0) for i in range(procs)]
        workers = [
            mp.Process(target=client_main, args=(port, n, codec, seconds, queue))
            for n in shares
            if n
        ]
        for w in workers:
            w.start()
        for _ in workers:
            kind, _n = queue.get(timeout=120)
            assert kind == "ready"
        deadline = time.monotonic() + 30
        while (first := query(port))["connected"] < calls and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(seconds / 2)
        second = query(port)
        totals = {"sent": 0, "received": 0, "lost": 0}
        for _ in workers:
            kind, stats = queue.get(timeout=120)
            for key in totals:
                totals[key] += stats[key]
        final = query(port)
        for w in workers:
            w.join(30)
        cpu = (second["cpu"] - first["cpu"]) / (second["wall"] - first["wall"])
        up_loss = 1 - final["to_plain"] / totals["sent"] if totals["sent"] else 1.0
        down = totals["received"] + totals["lost"]
        down_loss = totals["lost"] / down if down else 1.0
        return {
            "calls": calls,
            "connected": first["connected"],
            "cpu_per_call_pct": 100 * cpu / calls,
            "cpu_total_pct": 100 * cpu,
            "loss_to_sink_pct": 100 * max(0.0, up_loss),
            "loss_to_browser_pct": 100 * down_loss,
        }
    finally:
        gateway.terminate()
        gateway.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, help="default: 100 for PCMU, 30 for opus")
    parser.add_argument("--codec", choices=["PCMU", "opus", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--client-procs", type=int, default=2)
    args = parser.parse_args()
    if args.serve:
        import uvloop

        uvloop.run(serve())
        return
    codecs = ["PCMU", "opus"] if args.codec == "both" else [args.codec]
    for codec in codecs:
        calls = args.calls or (100 if codec == "PCMU" else 30)
        result = run(calls, codec, args.seconds, args.client_procs)
        print(
            f"{codec:5} calls={result['calls']} connected={result['connected']} "
            f"gateway CPU/call={result['cpu_per_call_pct']:.2f}% of a core "
            f"(total {result['cpu_total_pct']:.0f}%) "
            f"loss to sink={result['loss_to_sink_pct']:.3f}% "
            f"to browser={result['loss_to_browser_pct']:.3f}%",
            flush=True,
        )


if __name__ == "__main__":
    main()
