"""CDR and recordings index storage, crash recovery and the retention purge."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from outbound_pro.b2bua.record import CallRecord, LegMedia
from outbound_pro.b2bua.retention import purge_expired, recover_interrupted
from outbound_pro.media.wav import WavWriter
from outbound_pro.store import open_database
from outbound_pro.store.calls import CallStore, CdrFilter

DAY = 86400.0


@pytest.fixture
def store(tmp_path: Path) -> CallStore:
    return CallStore(open_database(tmp_path / "db.sqlite3"))


def _cdr(ref: str, at: float, **kw: object) -> CallRecord:
    fields: dict[str, object] = {
        "call_ref": ref,
        "direction": "outbound",
        "contract_id": 1,
        "id_id": 7,
        "affiliation_id": 3,
        "booth": "booth01",
        "caller": "+81311112222",
        "callee": "+81366667777",
        "setup_at": at,
    }
    fields.update(kw)
    return CallRecord(**fields)  # type: ignore[arg-type]


def _recording(store: CallStore, ref: str, path: Path, at: float, id_id: int = 7) -> int:
    return store.start_recording(
        call_ref=ref,
        contract_id=1,
        id_id=id_id,
        affiliation_id=3,
        booth="booth01",
        caller="+81311112222",
        callee="+81366667777",
        direction="outbound",
        started_at=at,
        path=str(path),
        retention_days=360 if store.retention_extended(id_id) else 180,
    )


def test_cdr_is_one_row_updated_in_place(store: CallStore) -> None:
    rec = _cdr("c1", 1000.0)
    store.save_cdr(rec)
    rec.answer_at, rec.end_at, rec.status, rec.hangup_by = 1002.0, 1062.5, 200, "callee"
    rec.media_a = LegMedia(packets=3000, octets=516000, lost=2, jitter_ms=1.5)
    store.save_cdr(rec)
    again = store.get_cdr("c1")
    assert again == rec
    assert (again.ring_seconds, again.talk_seconds) == (2.0, 60.5)  # type: ignore[union-attr]
    assert len(store.query_cdrs(CdrFilter(contract_id=1))) == 1


def test_cdr_query_filters(store: CallStore) -> None:
    store.save_cdr(_cdr("a", 100.0, answer_at=101.0, end_at=200.0))
    store.save_cdr(_cdr("b", 300.0, direction="inbound", id_id=8, caller="+81399998888"))
    store.save_cdr(_cdr("c", 500.0, contract_id=2))
    refs = lambda f: [r.call_ref for r in store.query_cdrs(f)]  # noqa: E731
    assert refs(CdrFilter(contract_id=1)) == ["b", "a"]
    assert refs(CdrFilter(contract_id=1, since=200.0)) == ["b"]
    assert refs(CdrFilter(contract_id=1, until=200.0)) == ["a"]
    assert refs(CdrFilter(contract_id=1, direction="inbound")) == ["b"]
    assert refs(CdrFilter(contract_id=1, id_ids=[7])) == ["a"]
    assert refs(CdrFilter(contract_id=1, id_ids=[])) == []
    assert refs(CdrFilter(contract_id=1, number="+81399998888")) == ["b"]
    assert refs(CdrFilter(contract_id=1, min_duration=60.0)) == ["a"]
    assert refs(CdrFilter(contract_id=1, affiliation_ids=[99])) == []


def test_recovery_repairs_the_wav_and_closes_open_cdrs(store: CallStore, tmp_path: Path) -> None:
    path = tmp_path / "rec" / "x.wav"
    path.parent.mkdir()
    writer = WavWriter(path)
    writer.append(b"\x01\x00\x02\x00" * 8000)
    path.open("ab").write(b"\x05\x00\x06\x00" * 100 + b"\x07")  # reached disk, header did not
    rid = _recording(store, "c1", path, 1000.0)
    store.save_cdr(_cdr("c1", 1000.0, answer_at=1001.0, status=200, recording_id=rid))
    assert asyncio.run(recover_interrupted(store, 5000.0)) == 1
    rec = store.get_recording(rid)
    assert rec is not None and rec.state == "interrupted"
    assert rec.size == path.stat().st_size == 44 + 4 * 8100
    assert rec.duration == 8100 / 8000 and len(rec.sha256) == 64
    cdr = store.get_cdr("c1")
    assert cdr is not None and cdr.end_at == 5000.0 and cdr.hangup_by == "system"
    assert cdr.status == 200  # it was answered: the status it had stays


def test_purge_deletes_expired_files_and_rows_and_logs(
    store: CallStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store.set_retention_extended(8, True)
    files = {}
    for name in ("old", "new", "ext"):
        files[name] = tmp_path / f"{name}.wav"
        files[name].write_bytes(b"RIFF")
    now = 1000 * DAY
    old = _recording(store, "old", files["old"], now - 181 * DAY)
    new = _recording(store, "new", files["new"], now - 179 * DAY)
    ext = _recording(store, "ext", files["ext"], now - 200 * DAY, id_id=8)
    for rid in (old, new, ext):
        store.finish_recording(rid, ended_at=0.0, duration=1.0, size=4, sha256="")
    store.save_cdr(_cdr("old", now - 181 * DAY, recording_id=old))
    with caplog.at_level(logging.INFO, logger="outbound_pro.b2bua.retention"):
        assert asyncio.run(purge_expired(store, now)) == 1
    assert not files["old"].exists() and files["new"].exists() and files["ext"].exists()
    assert store.get_recording(old) is None
    assert store.get_cdr("old").recording_id is None  # type: ignore[union-attr]
    assert any("purged expired recording" in r.message for r in caplog.records)
    # the extended booth's recording goes at 360 days
    assert asyncio.run(purge_expired(store, now + 161 * DAY)) == 2
    assert not files["ext"].exists()
