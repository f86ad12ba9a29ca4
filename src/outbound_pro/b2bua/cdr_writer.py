"""Group commit of CDRs and recording completions: at most one transaction per ``interval``.

A call changes its CDR three times (set-up, answer, end) and completes its recording once.
Committed one by one, that was four SQLite transactions per call, and a commit costs more than
the statements it commits (BEGIN IMMEDIATE, the WAL append, the WAL index update, now and then
a checkpoint): at 150 calls/s the commits alone took a tenth of the loop. Here every change is
queued; the queue is committed right after the current loop iteration when the last commit is
older than ``interval``, else ``interval`` after the last commit. So a lightly loaded server
commits each change at once, as before, and a loaded one makes at most ``1 / interval``
commits a second, each carrying many calls' changes; a CDR changed twice in between is written
once (the row is an upsert of the whole record, taken when the transaction runs).

Durability: a change reaches the WAL (what survives SIGKILL, see ``store.db``) at most
``interval`` after it was made. A SIGKILL therefore loses at most the last ``interval`` of
changes: see docs/b2bua.md "Durability" for what that means for a call.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time

from outbound_pro.b2bua.facts import RoutingFacts
from outbound_pro.b2bua.record import CallRecord
from outbound_pro.store.calls import CallStore, RecordingEnd

log = logging.getLogger("outbound_pro.b2bua")
RETRY_DELAY = 1.0  # after a failed commit (disk full, locked database)
INTERVAL = 0.01  # seconds: at most 100 commits a second


class CdrWriter:
    """Queues CDR upserts and recording completions; `flush` commits them together."""

    def __init__(self, store: CallStore, facts: RoutingFacts, interval: float = INTERVAL) -> None:
        self.store = store
        self.facts = facts
        self.interval = interval
        self._last_commit = -interval
        self._cdrs: dict[str, CallRecord] = {}
        self._ends: dict[int, RecordingEnd] = {}
        self._handle: asyncio.Handle | None = None
        self.commits = 0  # transactions made (for tests and the benchmark's curiosity)

    @property
    def pending(self) -> int:
        return len(self._cdrs) + len(self._ends)

    def save(self, rec: CallRecord) -> None:
        self._cdrs[rec.call_ref] = rec
        self._schedule()

    def recording_ended(self, end: RecordingEnd) -> None:
        self._ends[end.recording_id] = end
        self._schedule()

    def _schedule(self, delay: float | None = None) -> None:
        if self._handle is None:
            if delay is None:
                delay = self._last_commit + self.interval - time.monotonic()
            loop = asyncio.get_running_loop()
            self._handle = (
                loop.call_later(delay, self.flush) if delay > 0 else loop.call_soon(self.flush)
            )

    def flush(self) -> None:
        """Commit everything queued (also called directly at shutdown)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if not self._cdrs and not self._ends:
            return
        cdrs, ends = self._cdrs, self._ends
        self._cdrs, self._ends = {}, {}
        try:
            with self.facts.own_writes():
                self.store.write_batch(cdrs.values(), ends.values())
        except sqlite3.Error:
            log.exception("CDR commit failed; retrying", extra={"changes": len(cdrs) + len(ends)})
            # Keep what failed unless a newer change of the same row is queued already.
            self._cdrs = cdrs | self._cdrs
            self._ends = ends | self._ends
            self._schedule(RETRY_DELAY)
            return
        self._last_commit = time.monotonic()
        self.commits += 1
