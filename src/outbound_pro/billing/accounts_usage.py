"""A `UsageSource` over the accounts database: what a contract had, as dated changes.

The accounts store keeps every billable unit with ``added_at``/``removed_at`` (rows of removed
user IDs, devices and numbers stay for this purpose). Each becomes one ``+1`` change on the
Japan date it was added and one ``-1`` change on the Japan date it was removed, with an ``id``
so that the removal ends that very unit rather than the most recent one of its kind. The
result is the same `Usage` a usage file gives, so any invoice the database produces can be
re-checked by hand from ``billing usage`` output.

Mapping (accounts kind -> fee-table unit): user ID -> ``booth``, sub-admin ID ->
``sub_admin_id``, affiliation -> ``affiliation``, device -> ``sip_device``, SIP account on a
device -> ``sip_number``. The accounts model has no recording-extension or predictive-call
option per booth yet, so ``extended_booth`` and ``predictive_booth`` never appear: a contract
from the database is billed without them until accounts records them.

Units added before the contract's service start are taken as added on the start date (IDs are
often created while the contract is being set up), units removed before it are left out, and
units still present after the service end are ended by ``service_end`` itself.
"""

from __future__ import annotations

import datetime as dt

from outbound_pro.accounts.models import Contract, ContractStatus
from outbound_pro.billing.errors import BillingError
from outbound_pro.billing.model import Change, Usage
from outbound_pro.billing.months import tokyo_date
from outbound_pro.store.accounts import AccountsStore
from outbound_pro.store.billing import BillingStore

#: accounts `UsageUnit.kind` -> fee-table unit.
UNIT_OF_KIND = {
    "booth": "booth",
    "subadmin": "sub_admin_id",
    "affiliation": "affiliation",
    "sip_channel": "sip_device",
    "sip_account": "sip_number",
}

#: Contracts that never entered service have nothing to bill.
NEVER_SERVED = frozenset({ContractStatus.APPLIED, ContractStatus.REFUSED})


def contract_ref(contract_id: int) -> str:
    """The contract as invoices name it (``C-7``), so invoice numbers read ``C-7-202607``."""
    return f"C-{contract_id}"


def parse_contract_ref(text: str) -> int | None:
    """``C-7``, ``c-7`` or ``7`` -> 7; anything else -> None (the caller may try a domain)."""
    text = text.strip()
    if text[:2].lower() == "c-":
        text = text[2:]
    return int(text) if text.isdigit() and len(text) <= 18 else None


def _stamp(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat(timespec="microseconds")


class AccountsUsage:
    """`UsageSource` for contracts in the database (``usage("C-7")`` or ``usage("7")``)."""

    def __init__(self, accounts: AccountsStore, billing: BillingStore) -> None:
        self.accounts = accounts
        self.billing = billing

    def contract(self, ref: str) -> Contract:
        contract_id = parse_contract_ref(ref)
        contract = None if contract_id is None else self.accounts.get_contract(contract_id)
        if contract is None:
            raise BillingError(f"no contract {ref!r}; list them with `outbound-pro contract list`")
        return contract

    def usage(self, contract: str) -> Usage:
        return self.usage_of(self.contract(contract))

    def usage_of(self, contract: Contract) -> Usage:
        """The `Usage` of *contract* over its whole life."""
        if contract.status in NEVER_SERVED or contract.start_date is None:
            raise BillingError(
                f"contract {contract_ref(contract.id)} ({contract.name}) has not entered "
                f"service (status {contract.status.value}); there is nothing to bill"
            )
        start, end = contract.start_date, contract.end_date
        adds: list[Change] = []
        removes: list[Change] = []
        for unit in self.accounts.usage_units(contract.id):
            name = UNIT_OF_KIND.get(unit.kind)
            if name is None:
                raise BillingError(f"accounts unit kind {unit.kind!r} has no fee-table unit")
            first = max(tokyo_date(unit.added_at), start)
            last = None if unit.removed_at is None else tokyo_date(unit.removed_at)
            if last is not None and last < start:
                continue  # created and removed while the contract was being set up
            if end is not None and first > end:
                continue
            ident = f"{unit.kind}:{unit.ref}@{_stamp(unit.added_at)}"
            adds.append(Change(date=first, unit=name, delta=1, id=ident))
            if last is not None and (end is None or last < end):
                removes.append(Change(date=last, unit=name, delta=-1, id=ident))
        # Adds first, then a stable sort by date: on one day a unit is added before it is
        # removed, which a unit added and removed the same day needs.
        changes = sorted([*adds, *removes], key=lambda c: c.date)
        return Usage(
            contract=contract_ref(contract.id),
            customer_name=contract.name,
            service_start=start,
            service_end=end,
            changes=tuple(changes),
            outages=tuple(self.billing.outages(contract.id)),
        )
