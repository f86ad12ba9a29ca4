"""Routing facts memoised between calls, and the CDR group commit."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from outbound_pro.accounts.models import ContractStatus, IdStatus
from outbound_pro.b2bua.cdr_writer import CdrWriter
from outbound_pro.b2bua.facts import RoutingFacts
from outbound_pro.b2bua.record import CallRecord
from outbound_pro.store.accounts import AccountsStore
from outbound_pro.store.calls import CallStore, RecordingEnd
from tests.accounts.helpers import CONSOLE, World, active_contract, make_world, user


def _facts(tmp_path: Path) -> tuple[RoutingFacts, World, int, int]:
    w = make_world(tmp_path)
    contract, _ = active_contract(w.svc, "memo.op.local")
    booth = user(w.svc, contract.id, "booth01", numbers=("0311112222",))
    facts = RoutingFacts(AccountsStore(w.db), CallStore(w.db))
    return facts, w, contract.id, booth.id


def test_facts_are_read_once_between_changes(tmp_path: Path) -> None:
    facts, _, _, id_id = _facts(tmp_path)
    facts.refresh()
    first = facts.booth(id_id)
    assert first is not None and first.status is IdStatus.ACTIVE
    assert first.contract_status is ContractStatus.ACTIVE and first.login == "booth01"
    owner = facts.number_owner("+81311112222")
    assert owner is not None and owner.id_id == id_id
    facts.refresh()  # nothing changed: the same objects, no query
    assert facts.booth(id_id) is first
    assert facts.number_owner("+81311112222") is owner
    assert facts.contract_by_domain("memo.op.local") is facts.contract_by_domain("memo.op.local")


def test_a_change_on_this_connection_counts_at_the_next_refresh(tmp_path: Path) -> None:
    facts, w, contract_id, id_id = _facts(tmp_path)
    facts.refresh()
    assert facts.booth(id_id).status is IdStatus.ACTIVE  # type: ignore[union-attr]
    w.svc.suspend_contract(CONSOLE, contract_id, reason="unpaid")  # the admin API's connection
    facts.refresh()
    booth = facts.booth(id_id)
    assert booth is not None and booth.contract_status is ContractStatus.SUSPENDED
    w.svc.revoke_id(CONSOLE, id_id)
    facts.refresh()
    assert facts.booth(id_id).status is IdStatus.REVOKED  # type: ignore[union-attr]
    assert facts.number_owner("+81311112222") is None


def test_another_process_commit_counts_and_own_writes_do_not_empty_the_memo(
    tmp_path: Path,
) -> None:
    facts, w, _, id_id = _facts(tmp_path)
    facts.refresh()
    cached = facts.booth(id_id)
    with facts.own_writes():  # a CDR: cannot change a fact
        CallStore(w.db).save_cdr(CallRecord(call_ref="c1", direction="outbound"))
    facts.refresh()
    assert facts.booth(id_id) is cached
    other = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None)  # the CLI
    other.execute("UPDATE ids SET status = 'restricted' WHERE id = ?", (id_id,))
    other.close()
    facts.refresh()
    assert facts.booth(id_id).status is IdStatus.RESTRICTED  # type: ignore[union-attr]


def test_the_memo_is_bounded(tmp_path: Path) -> None:
    facts, *_ = _facts(tmp_path)
    facts.max_entries = 10
    facts.refresh()
    for n in range(20):
        assert facts.contract_by_domain(f"nobody{n}.example") is None
    facts.refresh()
    assert len(facts._memo) == 0


async def test_changes_of_one_loop_iteration_share_one_commit(tmp_path: Path) -> None:
    facts, w, *_ = _facts(tmp_path)
    store = CallStore(w.db)
    writer = CdrWriter(store, facts, interval=0.05)
    rid = store.start_recording(
        call_ref="a",
        contract_id=1,
        id_id=None,
        affiliation_id=None,
        booth="b",
        caller="",
        callee="",
        direction="outbound",
        started_at=1.0,
        path="/nowhere.wav",
        retention_days=180,
    )
    recs = [CallRecord(call_ref=f"c{n}", direction="outbound", setup_at=n) for n in range(5)]
    for rec in recs:
        writer.save(rec)
    recs[0].status = 200  # changed again before the commit: written once, as it is then
    writer.save(recs[0])
    writer.recording_ended(RecordingEnd(rid, 9.0, 8.0, 44, "ab"))
    assert writer.pending == 6 and store.get_cdr("c0") is None
    await asyncio.sleep(0)  # the end of this loop iteration
    await asyncio.sleep(0)
    assert writer.commits == 1 and writer.pending == 0
    saved = store.get_cdr("c0")
    assert saved is not None and saved.status == 200
    assert all(store.get_cdr(f"c{n}") is not None for n in range(5))
    done = store.get_recording(rid)
    assert done is not None and (done.state, done.size, done.sha256) == ("complete", 44, "ab")
    # A change right after a commit waits for the interval, so commits stay <= 1 / interval.
    recs[1].status = 486
    writer.save(recs[1])
    await asyncio.sleep(0.01)
    assert writer.commits == 1 and store.get_cdr("c1").status == 0  # type: ignore[union-attr]
    await asyncio.sleep(0.06)
    assert writer.commits == 2 and store.get_cdr("c1").status == 486  # type: ignore[union-attr]
