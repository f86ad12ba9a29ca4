"""Web sessions: random bearer tokens, stored as SHA-256, with absolute and idle expiry.

The same token works as a cookie (browsers) and as ``Authorization: Bearer`` (scripts).
Storing only the hash means a database copy cannot be replayed as a login; persisting at all
means a server restart does not log everyone out.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from outbound_pro.accounts.models import Session
from outbound_pro.accounts.passwords import token_hash
from outbound_pro.store.accounts import AccountsStore


@dataclass(frozen=True)
class SessionLimits:
    absolute: float = 12 * 3600.0  # a working day, then log in again
    idle: float = 30 * 60.0  # an unattended browser at a booth does not stay logged in
    touch_interval: float = 60.0  # write the idle extension at most once a minute


class SessionManager:
    def __init__(self, store: AccountsStore, limits: SessionLimits | None = None) -> None:
        self.store = store
        self.limits = limits or SessionLimits()

    def create(self, kind: str, subject_id: int, source: str, now: float) -> tuple[str, float]:
        """A new token and its absolute expiry time."""
        token = secrets.token_urlsafe(32)
        expires = now + self.limits.absolute
        self.store.insert_session(
            token_hash(token),
            kind,
            subject_id,
            now,
            expires,
            min(expires, now + self.limits.idle),
            source,
        )
        return token, expires

    def resolve(self, token: str, now: float) -> Session | None:
        """The live session for *token*, extending its idle deadline; None when expired."""
        if not token or len(token) > 200:
            return None
        digest = token_hash(token)
        session = self.store.get_session(digest)
        if session is None:
            return None
        if now >= session.expires_at or now >= session.idle_expires_at:
            self.store.delete_session(digest)
            return None
        idle = min(session.expires_at, now + self.limits.idle)
        if idle - session.idle_expires_at >= self.limits.touch_interval:
            self.store.touch_session(digest, idle)
        return session

    def end(self, token: str) -> None:
        self.store.delete_session(token_hash(token))

    def purge(self, now: float) -> int:
        return self.store.purge_sessions(now)
