"""What call routing reads from the accounts database, kept between calls.

Routing one booth INVITE used to read the contract by domain three times, the booth's
secrets, identity, contract and affiliation, the dialled number's owner, the trunk list and
the booth's recording option: nine SQLite queries and as many row-to-struct conversions,
about a third of a millisecond of the loop per call. The facts change rarely (an operator
suspends a contract, revokes an ID, binds a number), so they are memoised here, and the memo
is dropped whenever the database may have changed (`ChangeWatch`): another process's commit
(the CLI, a second server) or a write on this connection that the B2BUA did not make itself
(the admin API, the registrar). A suspension, a revocation or a new number therefore counts
on the very next INVITE, exactly as without the memo. The B2BUA's own writes (CDRs,
recordings) cannot change a fact: they go through `own_writes`, which absorbs them.

Call `refresh` once per event (an INVITE, a recording start) before reading: nothing else
runs on the loop between it and the reads, so the memo cannot go stale in between.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import NamedTuple, TypeVar

from outbound_pro.accounts.models import (
    AffiliationPolicy,
    Contract,
    ContractStatus,
    IdSecrets,
    IdStatus,
    NumberOwner,
    Trunk,
)
from outbound_pro.store.accounts import AccountsStore
from outbound_pro.store.calls import CallStore
from outbound_pro.store.db import ChangeWatch

T = TypeVar("T")


class BoothFacts(NamedTuple):
    """What `accounts.policy.call_setup` and the CDR need to know about one booth (ID)."""

    contract_id: int
    contract_status: ContractStatus
    status: IdStatus  # REVOKED for a removed ID
    policy: AffiliationPolicy | None
    affiliation_id: int | None
    login: str
    numbers: list[str]


class RoutingFacts:
    """Memoised reads of `AccountsStore` (and the recording option of `CallStore`).

    The memo also empties itself past ``max_entries`` so that INVITEs naming endless unknown
    domains or logins cannot grow it without bound.
    """

    def __init__(
        self, accounts: AccountsStore, calls: CallStore, *, max_entries: int = 100_000
    ) -> None:
        self.accounts = accounts
        self.calls = calls
        self.max_entries = max_entries
        self.watch = ChangeWatch(accounts.db)
        self._memo: dict[tuple[object, ...], object] = {}

    def refresh(self) -> None:
        """Forget everything if the database may have changed since the last look."""
        if self.watch.changed() or len(self._memo) > self.max_entries:
            self._memo.clear()

    @contextlib.contextmanager
    def own_writes(self) -> Iterator[None]:
        """Around the B2BUA's own writes: they do not empty the memo (module docstring)."""
        self.refresh()
        yield
        self.watch.absorb()

    def _get(self, key: tuple[object, ...], load: Callable[[], T]) -> T:
        memo = self._memo
        if key in memo:
            return memo[key]  # type: ignore[return-value]
        value = memo[key] = load()
        return value

    def contract_by_domain(self, domain: str) -> Contract | None:
        """*domain* lower-cased."""
        return self._get(("domain", domain), lambda: self.accounts.contract_by_domain(domain))

    def sip_secrets(self, contract_id: int, login: str) -> IdSecrets | None:
        return self._get(
            ("secrets", contract_id, login),
            lambda: self.accounts.sip_secrets(contract_id, login),
        )

    def booth(self, id_id: int) -> BoothFacts | None:
        """None when the ID does not exist (any more)."""
        return self._get(("booth", id_id), lambda: self._load_booth(id_id))

    def _load_booth(self, id_id: int) -> BoothFacts | None:
        ident = self.accounts.get_identity(id_id)
        if ident is None:
            return None
        contract = self.accounts.get_contract(ident.contract_id)
        if contract is None:
            return None
        aff = (
            self.accounts.get_affiliation(ident.affiliation_id)
            if ident.affiliation_id is not None
            else None
        )
        return BoothFacts(
            contract_id=contract.id,
            contract_status=contract.status,
            status=IdStatus.REVOKED if ident.removed_at is not None else ident.status,
            policy=aff.policy if aff is not None else None,
            affiliation_id=ident.affiliation_id,
            login=ident.login,
            numbers=list(ident.numbers),
        )

    def number_owner(self, e164: str) -> NumberOwner | None:
        return self._get(("owner", e164), lambda: self.accounts.number_owner(e164))

    def trunks(self) -> list[Trunk]:
        return self._get(("trunks",), self.accounts.list_trunks)

    def retention_extended(self, id_id: int | None) -> bool:
        return self._get(("retention", id_id), lambda: self.calls.retention_extended(id_id))
