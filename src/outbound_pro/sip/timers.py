"""SIP transaction timer values (RFC 3261 §17 and Table 4; RFC 6026 Timers L and M).

Everything derives from T1, T2 and T4, so configuration only ever sets those three (plus the
Timer D floor); the transaction layer asks this object for a timer's duration given whether
the transport is reliable, because most timers collapse to zero on TCP/TLS.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec


class Timer(StrEnum):
    A = "A"  # INVITE client: request retransmit (unreliable)
    B = "B"  # INVITE client: transaction timeout
    D = "D"  # INVITE client: wait for response retransmissions in Completed
    E = "E"  # non-INVITE client: request retransmit (unreliable)
    F = "F"  # non-INVITE client: transaction timeout
    G = "G"  # INVITE server: final response retransmit (unreliable)
    H = "H"  # INVITE server: wait for ACK
    I = "I"  # noqa: E741 - RFC name; INVITE server: absorb ACK retransmissions in Confirmed
    J = "J"  # non-INVITE server: absorb request retransmissions in Completed
    K = "K"  # non-INVITE client: absorb response retransmissions in Completed
    L = "L"  # INVITE server (RFC 6026): Accepted state lifetime
    M = "M"  # INVITE client (RFC 6026): Accepted state lifetime


class TimerConfig(msgspec.Struct, frozen=True):
    """T1 (RTT estimate), T2 (max non-INVITE retransmit interval), T4 (max network lifetime).

    Defaults are RFC 3261's.  ``timer_d`` is the unreliable-transport Timer D ("at least 32
    seconds", §17.1.1.2).
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_d: float = 32.0

    def duration(self, timer: Timer, reliable: bool) -> float:
        """Initial duration of *timer*; 0.0 means "fire immediately" (reliable transports)."""
        t1 = self.t1
        if timer in (Timer.B, Timer.F, Timer.H, Timer.L, Timer.M):
            return 64 * t1
        if reliable:
            return 0.0
        if timer in (Timer.A, Timer.E, Timer.G):
            return t1
        if timer is Timer.D:
            return self.timer_d
        if timer is Timer.J:
            return 64 * t1
        return self.t4  # I, K
