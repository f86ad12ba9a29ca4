"""Recordings after the call: crash recovery at start-up and the retention purge.

Both work on the recordings index (``store.calls``) and the files it names, with the file I/O
in the default executor (architecture principle 2).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

from outbound_pro.media import wav
from outbound_pro.store.calls import CallStore

log = logging.getLogger("outbound_pro.b2bua.retention")


async def recover_interrupted(store: CallStore, now: float) -> int:
    """After a crash: recordings still marked ``recording`` get their WAV header extended over
    what reached the disk (``media.wav.repair``), their size and hash indexed, and become
    ``interrupted``; CDRs of calls that were in progress are closed. Returns the recordings
    recovered."""
    loop = asyncio.get_running_loop()
    count = 0
    for rec in store.unfinished_recordings():
        path = Path(rec.path)
        frames, size, digest = 0, 0, ""
        if path.exists():
            try:
                frames = await loop.run_in_executor(None, wav.repair, path)
                size = path.stat().st_size
                digest = await loop.run_in_executor(None, wav.sha256_file, path)
            except (OSError, ValueError) as exc:
                log.error("cannot repair recording", extra={"path": rec.path, "error": str(exc)})
        store.finish_recording(
            rec.id,
            ended_at=now,
            duration=frames / 8000,
            size=size,
            sha256=digest,
            state="interrupted",
        )
        log.info("recovered interrupted recording", extra={"path": rec.path, "frames": frames})
        count += 1
    closed = store.close_interrupted(now)
    if closed:
        log.info("closed CDRs of interrupted calls", extra={"count": closed})
    return count


async def purge_expired(store: CallStore, now: float) -> int:
    """Delete recordings past their retention (the file, then the row) and log each one.

    The retention is fixed when the recording starts (180 days, 360 with the booth's extension
    option; ``[b2bua] retention_days*``) and stored as ``expires_at``, so changing the option
    later does not shorten what customers were promised for past calls.
    """
    loop = asyncio.get_running_loop()
    count = 0
    while True:
        batch = store.expired_recordings(now)
        if not batch:
            return count
        for rec in batch:
            with contextlib.suppress(FileNotFoundError):
                await loop.run_in_executor(None, os.unlink, rec.path)
            store.delete_recording(rec.id)
            log.info(
                "purged expired recording",
                extra={"recording": rec.id, "path": rec.path, "call": rec.call_ref},
            )
            count += 1
