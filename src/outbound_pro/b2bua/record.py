"""The call detail record: one per call, both legs, filled in as the call progresses.

The row is written when the call is set up and updated at the answer and at the end (group
commits, ``cdr_writer.py``), so a server killed mid-call still leaves a record of the call
(closed as ``interrupted`` at the next start). ``recording_id`` stays None for a call that
carried no RTP: it has no recording.
"""

from __future__ import annotations

import msgspec


class LegMedia(msgspec.Struct, kw_only=True):
    """What the relay measured on one leg (the stream *received from* that side)."""

    packets: int = 0
    octets: int = 0
    lost: int = 0
    jitter_ms: float = 0.0
    dropped_unexpected_source: int = 0


class CallRecord(msgspec.Struct, kw_only=True):
    """A CDR. Times are Unix seconds (UTC); durations seconds; empty strings for unknowns.

    ``direction`` is ``outbound`` (booth → trunk), ``inbound`` (trunk → booth) or
    ``internal`` (booth → booth). ``hangup_by`` is ``caller``, ``callee`` or ``system`` (ring
    timeout, maximum duration, far end vanished, server restart).
    """

    call_ref: str
    direction: str
    contract_id: int | None = None
    id_id: int | None = None
    affiliation_id: int | None = None
    booth: str = ""
    caller: str = ""
    callee: str = ""
    trunk: str = ""
    a_call_id: str = ""
    b_call_id: str = ""
    setup_at: float = 0.0
    ringing_at: float | None = None
    answer_at: float | None = None
    end_at: float | None = None
    hangup_by: str = ""
    status: int = 0
    reason: str = ""
    codec_a: str = ""
    codec_b: str = ""
    media_a: LegMedia | None = None
    media_b: LegMedia | None = None
    recording_id: int | None = None

    @property
    def ring_seconds(self) -> float:
        end = self.answer_at or self.end_at
        return round(end - self.setup_at, 3) if end is not None else 0.0

    @property
    def talk_seconds(self) -> float:
        if self.answer_at is None or self.end_at is None:
            return 0.0
        return round(self.end_at - self.answer_at, 3)
