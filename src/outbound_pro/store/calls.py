"""CDRs, the recordings index and per-booth recording options: the SQL for calls.

Times are Unix seconds (REAL) so range queries are plain comparisons; the API formats them.

`write_batch` is the B2BUA's group commit: every CDR change and recording completion of one
loop iteration in one transaction (a commit costs more than the statements it commits, see
docs/b2bua.md "Durability"); the statements are built once, at import.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from outbound_pro.b2bua.record import CallRecord, LegMedia
from outbound_pro.store.db import Database

_media = msgspec.json.Encoder()
_media_decoder = msgspec.json.Decoder(LegMedia | None)

_CDR_COLUMNS = (
    "call_ref",
    "direction",
    "contract_id",
    "id_id",
    "affiliation_id",
    "booth",
    "caller",
    "callee",
    "trunk",
    "a_call_id",
    "b_call_id",
    "setup_at",
    "ringing_at",
    "answer_at",
    "end_at",
    "hangup_by",
    "status",
    "reason",
    "codec_a",
    "codec_b",
    "media_a",
    "media_b",
    "recording_id",
)


class Recording(msgspec.Struct, kw_only=True):
    """One row of the recordings index."""

    id: int
    call_ref: str
    contract_id: int
    id_id: int | None
    affiliation_id: int | None
    booth: str
    caller: str
    callee: str
    direction: str
    started_at: float
    ended_at: float | None
    duration: float
    size: int
    sha256: str
    path: str
    state: str  # recording | complete | interrupted | failed
    expires_at: float


class CdrFilter(msgspec.Struct, kw_only=True):
    contract_id: int
    since: float | None = None
    until: float | None = None
    id_ids: list[int] | None = None  # None = any booth of the contract
    affiliation_ids: list[int] | None = None
    number: str | None = None
    direction: str | None = None
    min_duration: float | None = None
    limit: int = 1000


_UPSERT_CDR = (
    f"INSERT INTO call_records ({', '.join(_CDR_COLUMNS)})"
    f" VALUES ({', '.join('?' for _ in _CDR_COLUMNS)})"
    " ON CONFLICT (call_ref) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _CDR_COLUMNS if c != "call_ref")
)
_FINISH_RECORDING = (
    "UPDATE recordings SET ended_at = ?, duration = ?, size = ?, sha256 = ?, state = ? WHERE id = ?"
)


def _media_text(media: LegMedia | None) -> str | None:
    return _media.encode(media).decode() if media is not None else None


def _cdr_row(rec: CallRecord) -> tuple[Any, ...]:
    """The CDR's values in `_CDR_COLUMNS` order."""
    return (
        rec.call_ref,
        rec.direction,
        rec.contract_id,
        rec.id_id,
        rec.affiliation_id,
        rec.booth,
        rec.caller,
        rec.callee,
        rec.trunk,
        rec.a_call_id,
        rec.b_call_id,
        rec.setup_at,
        rec.ringing_at,
        rec.answer_at,
        rec.end_at,
        rec.hangup_by,
        rec.status,
        rec.reason,
        rec.codec_a,
        rec.codec_b,
        _media_text(rec.media_a),
        _media_text(rec.media_b),
        rec.recording_id,
    )


class RecordingEnd(msgspec.Struct, frozen=True):
    """How a recording ended: what `finish_recording` writes to its index row."""

    recording_id: int
    ended_at: float
    duration: float
    size: int
    sha256: str
    state: str = "complete"

    def row(self) -> tuple[Any, ...]:
        return (self.ended_at, self.duration, self.size, self.sha256, self.state, self.recording_id)


class CallStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- CDRs -----------------------------------------------------------------------------

    def save_cdr(self, rec: CallRecord) -> None:
        """Insert or update the CDR of ``rec.call_ref`` (one row per call)."""
        self.write_batch([rec], [])

    def write_batch(self, cdrs: Iterable[CallRecord], ends: Iterable[RecordingEnd]) -> None:
        """Upsert *cdrs* and complete the recordings of *ends*, all in one transaction."""
        conn = self.db.conn
        with self.db.transaction():
            conn.executemany(_UPSERT_CDR, [_cdr_row(rec) for rec in cdrs])
            conn.executemany(_FINISH_RECORDING, [end.row() for end in ends])

    @staticmethod
    def _cdr(row: dict[str, Any]) -> CallRecord:
        row = dict(row)
        row.pop("id", None)
        for side in ("media_a", "media_b"):
            raw = row[side]
            row[side] = _media_decoder.decode(raw) if raw else None
        return CallRecord(**row)

    def get_cdr(self, call_ref: str) -> CallRecord | None:
        row = self.db.one("SELECT * FROM call_records WHERE call_ref = ?", (call_ref,))
        return None if row is None else self._cdr(row)

    def query_cdrs(self, f: CdrFilter) -> list[CallRecord]:
        where, params = self._where(f, "setup_at")
        if f.min_duration is not None:
            where.append("answer_at IS NOT NULL AND end_at - answer_at >= ?")
            params.append(f.min_duration)
        rows = self.db.query(
            f"SELECT * FROM call_records WHERE {' AND '.join(where)}"
            " ORDER BY setup_at DESC LIMIT ?",
            [*params, f.limit],
        )
        return [self._cdr(r) for r in rows]

    def close_interrupted(self, now: float) -> int:
        """CDRs of calls that were in progress when the server died: end them now."""
        with self.db.transaction():
            cur = self.db.execute(
                "UPDATE call_records SET end_at = ?, hangup_by = 'system',"
                " reason = CASE WHEN reason = '' THEN 'interrupted by server restart'"
                " ELSE reason END, status = CASE WHEN status = 0 THEN 500 ELSE status END"
                " WHERE end_at IS NULL",
                (now,),
            )
            return cur.rowcount

    @staticmethod
    def _where(f: CdrFilter, time_col: str) -> tuple[list[str], list[Any]]:
        where = ["contract_id = ?"]
        params: list[Any] = [f.contract_id]
        if f.since is not None:
            where.append(f"{time_col} >= ?")
            params.append(f.since)
        if f.until is not None:
            where.append(f"{time_col} < ?")
            params.append(f.until)
        if f.id_ids is not None:
            where.append(f"id_id IN ({', '.join('?' for _ in f.id_ids) or 'NULL'})")
            params += f.id_ids
        if f.affiliation_ids is not None:
            where.append(
                f"affiliation_id IN ({', '.join('?' for _ in f.affiliation_ids) or 'NULL'})"
            )
            params += f.affiliation_ids
        if f.number:
            where.append("(caller = ? OR callee = ?)")
            params += [f.number, f.number]
        if f.direction:
            where.append("direction = ?")
            params.append(f.direction)
        return where, params

    # -- recordings -----------------------------------------------------------------------

    def start_recording(
        self,
        *,
        call_ref: str,
        contract_id: int,
        id_id: int | None,
        affiliation_id: int | None,
        booth: str,
        caller: str,
        callee: str,
        direction: str,
        started_at: float,
        path: str,
        retention_days: int,
    ) -> int:
        """Index a recording as it starts (state ``recording``): a crash still leaves a row."""
        with self.db.transaction():
            cur = self.db.execute(
                "INSERT INTO recordings (call_ref, contract_id, id_id, affiliation_id, booth,"
                " caller, callee, direction, started_at, ended_at, duration, size, sha256, path,"
                " state, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, 0, 0, '', ?,"
                " 'recording', ?)",
                (
                    call_ref,
                    contract_id,
                    id_id,
                    affiliation_id,
                    booth,
                    caller,
                    callee,
                    direction,
                    started_at,
                    path,
                    started_at + retention_days * 86400,
                ),
            )
            return int(cur.lastrowid or 0)

    def finish_recording(
        self,
        recording_id: int,
        *,
        ended_at: float,
        duration: float,
        size: int,
        sha256: str,
        state: str = "complete",
    ) -> None:
        end = RecordingEnd(recording_id, ended_at, duration, size, sha256, state)
        self.write_batch([], [end])

    def unfinished_recordings(self) -> list[Recording]:
        rows = self.db.query("SELECT * FROM recordings WHERE state = 'recording' ORDER BY id")
        return [Recording(**r) for r in rows]

    def get_recording(self, recording_id: int) -> Recording | None:
        row = self.db.one("SELECT * FROM recordings WHERE id = ?", (recording_id,))
        return None if row is None else Recording(**row)

    def search_recordings(self, f: CdrFilter) -> list[Recording]:
        where, params = self._where(f, "started_at")
        if f.min_duration is not None:
            where.append("duration >= ?")
            params.append(f.min_duration)
        rows = self.db.query(
            f"SELECT * FROM recordings WHERE {' AND '.join(where)}"
            " ORDER BY started_at DESC LIMIT ?",
            [*params, f.limit],
        )
        return [Recording(**r) for r in rows]

    def expired_recordings(self, now: float, limit: int = 1000) -> list[Recording]:
        rows = self.db.query(
            "SELECT * FROM recordings WHERE expires_at <= ? AND state != 'recording'"
            " ORDER BY expires_at LIMIT ?",
            (now, limit),
        )
        return [Recording(**r) for r in rows]

    def delete_recording(self, recording_id: int) -> None:
        with self.db.transaction():
            self.db.execute(
                "UPDATE call_records SET recording_id = NULL WHERE recording_id = ?",
                (recording_id,),
            )
            self.db.execute("DELETE FROM recordings WHERE id = ?", (recording_id,))

    # -- per-booth options ----------------------------------------------------------------

    def retention_extended(self, id_id: int | None) -> bool:
        if id_id is None:
            return False
        return bool(
            self.db.scalar("SELECT retention_extended FROM booth_options WHERE id_id = ?", (id_id,))
        )

    def set_retention_extended(self, id_id: int, extended: bool) -> None:
        """The paid option that keeps a booth's recordings 360 days instead of 180."""
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO booth_options (id_id, retention_extended) VALUES (?, ?)"
                " ON CONFLICT (id_id) DO UPDATE"
                " SET retention_extended = excluded.retention_extended",
                (id_id, int(extended)),
            )
