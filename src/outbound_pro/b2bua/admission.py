"""Admission control: refuse new calls early (503 + Retry-After) when the server is overloaded.

Without it an overloaded server keeps accepting INVITEs it cannot finish: the messages of the
calls it already has wait behind new ones, the kernel drops datagrams from the full receive
queue, retransmissions add load, and callers get a 480 after the callee leg's 32-second
timeout. A 503 costs one response and no call state, so refusing early sheds most of a
call's cost at once.

"Overloaded" is defined by two measures, checked for every new INVITE before anything else
(authentication, routing, the database):

* **The SIP receive backlog** — the bytes waiting in the kernel's receive queue of the SIP UDP
  socket (``SO_MEMINFO``: the queue's memory, datagram overheads included), as a fraction of
  the socket's receive buffer (``SO_RCVBUF``). This is where a UDP server's overload shows:
  the event loop reads a bounded batch per iteration and keeps its timers running, so loop lag
  stays near tens of milliseconds while a second of work waits in the kernel (measured: a
  uvloop UDP handler 200 µs per datagram with 6,500 datagrams queued kept its 25 ms timer
  within 38 ms). A queue beyond ``backlog_limit`` of the buffer *for at least* ``SUSTAINED``
  seconds (as seen by consecutive INVITEs) means the loop is behind and the kernel is about to
  drop datagrams, which is what turns into callee-leg timeouts and 480s. The limit is high and
  the time short on purpose: a queue is a buffer, and refusing while it still absorbs a burst
  refuses calls the server would have completed (a first version, beyond half the buffer for
  100 ms, refused calls at 150 and 200 calls/s that the server completed without it); waiting
  longer (half a second beyond 80 %) let the queue overflow before the first 503 at 1,000
  calls/s. One ``getsockopt`` per INVITE, about a microsecond.
* **Calls in set-up** — calls whose caller has no final response yet (INVITE accepted, callee
  not answered), including browser calls whose gateway leg is being made. Beyond
  ``max_calls_in_setup`` new calls are refused: this bounds the memory and relay ports held by
  calls that are not (yet) calls, whatever the cause (a slow carrier, a flood).

Either limit is off at 0. Only initial INVITEs are refused; everything that belongs to a call
in progress (ACK, BYE, re-INVITE, CANCEL, responses) is always handled.
"""

from __future__ import annotations

import enum
import socket
import struct
import time
from collections.abc import Callable

SO_MEMINFO = getattr(socket, "SO_MEMINFO", 55)  # Linux >= 4.6
_MEMINFO = struct.Struct("9I")  # SK_MEMINFO_RMEM_ALLOC is the first field
SUSTAINED = 0.05  # seconds the receive backlog must stay beyond its limit to count


class Verdict(enum.Enum):
    ADMIT = "admit"
    BACKLOG = "backlog"
    SETUP = "setup"


class ReceiveBacklog:
    """Reads how full a socket's receive queue is (0.0 empty .. 1.0 full, or more: the kernel
    lets the last datagram overshoot). A socket that cannot tell (not Linux) reads 0.0."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        try:
            self.buffer = max(1, sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
            self.fraction()
        except OSError:
            self.buffer = 0

    def fraction(self) -> float:
        if not self.buffer:
            return 0.0
        raw = self.sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, _MEMINFO.size)
        return _MEMINFO.unpack(raw)[0] / self.buffer


class Admission:
    """Decides each new INVITE (see the module docstring); *in_setup* counts calls in set-up."""

    def __init__(
        self,
        *,
        in_setup: Callable[[], int],
        max_calls_in_setup: int,
        backlog_limit: float,
        backlog: ReceiveBacklog | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.in_setup = in_setup
        self.max_calls_in_setup = max_calls_in_setup
        self.backlog_limit = backlog_limit
        self.backlog = backlog if backlog_limit > 0 else None
        self.clock = clock
        self._over_since: float | None = None  # when the backlog was first seen beyond its limit

    def check(self) -> Verdict:
        if self.max_calls_in_setup and self.in_setup() >= self.max_calls_in_setup:
            return Verdict.SETUP
        if self.backlog is not None and self._backlogged():
            return Verdict.BACKLOG
        return Verdict.ADMIT

    def _backlogged(self) -> bool:
        assert self.backlog is not None
        if self.backlog.fraction() <= self.backlog_limit:
            self._over_since = None
            return False
        now = self.clock()
        if self._over_since is None:
            self._over_since = now
        return now - self._over_since >= SUSTAINED
