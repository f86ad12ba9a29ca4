"""Child process for the SIGKILL test: records two live tone streams until it is killed.

Run as ``python -m tests.media.kill_child PATH``. Packets are generated on the fly for the
time that has passed (20 ms each, both legs) and fed and flushed every 50 ms, so the parent
sees the file grow flush by flush and can kill it at an arbitrary moment.
"""

from __future__ import annotations

import asyncio
import sys
import time

from outbound_pro.media.g711 import encode_alaw, encode_ulaw
from outbound_pro.media.recorder import CallRecorder
from tests.media.tones import FRAME, rtp, tone_codes


async def main(path: str) -> None:
    left = tone_codes(440, 1.0, encode_ulaw)
    right = tone_codes(1000, 1.0, encode_alaw)
    recorder = CallRecorder(path, lag=0.1, fsync_interval=None)
    start = recorder.start
    k = 0
    print("recording", flush=True)
    while True:
        now = time.monotonic()
        batch_a: list[bytes] = []
        batch_b: list[bytes] = []
        times: list[float] = []
        while start + 0.02 * k <= now:
            offset = (FRAME * k) % len(left)
            batch_a.append(rtp(k, FRAME * k, 1, 0, left[offset : offset + FRAME]))
            batch_b.append(rtp(k, FRAME * k, 2, 8, right[offset : offset + FRAME]))
            times.append(start + 0.02 * k)
            k += 1
        recorder.feed(0, batch_a, times)
        recorder.feed(1, batch_b, list(times))
        recorder.flush(now)
        await asyncio.sleep(0.05)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
