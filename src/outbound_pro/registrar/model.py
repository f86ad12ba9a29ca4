"""Records of the registrar: what a binding is, and what changed in one REGISTER."""

from __future__ import annotations

from typing import Protocol

import msgspec


class Binding(msgspec.Struct, frozen=True, gc=False):
    """One registered contact of a user ID (RFC 3261 §10).

    ``source_*`` and ``transport`` are where the REGISTER really came from: behind NAT the
    Contact URI holds a private address, so requests to the phone go to the source (the
    ``received``/``rport`` pair) over the same transport. Only scalars, so never part of a
    cycle: ``gc=False`` keeps the registrar's in-memory copy of the rows out of the cycle
    collector's walks.
    """

    contract_id: int
    id_id: int
    aor: str
    contact: str
    q: float
    expires_at: float
    call_id: str
    cseq: int
    transport: str
    source_host: str
    source_port: int
    user_agent: str = ""
    instance: str = ""
    updated_at: float = 0.0

    def expires_in(self, now: float) -> int:
        return max(0, int(self.expires_at - now + 0.5))


class BindingChange(msgspec.Struct, frozen=True):
    kind: str  # added | refreshed | removed
    binding: Binding


class RegistrationView(Protocol):
    """What the admin API reads for live registration status; the registrar implements it."""

    def registrations(self, contract_id: int, now: float) -> list[Binding]: ...
