"""Errors the accounts service raises; the API and CLI map each to a status or exit code."""

from __future__ import annotations


class AccountsError(Exception):
    """Base class; ``str(exc)`` is a message for the person at the other end."""


class NotFound(AccountsError):
    """Does not exist *or* is not visible to the caller: the two must look the same."""


class Forbidden(AccountsError):
    """Visible, but the caller may not do this."""


class Conflict(AccountsError):
    """Clashes with existing state (duplicate name, wrong lifecycle step, number in use)."""


class InvalidInput(AccountsError):
    """A value is wrong; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
