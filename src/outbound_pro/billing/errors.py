"""Billing errors. Every message names what is wrong and what to change, because the reader
is usually an operator checking a bill by hand, not a developer reading a traceback."""

from __future__ import annotations


class BillingError(Exception):
    """Input that cannot be billed as given."""


class TariffError(BillingError):
    """A fee-table version that is malformed or refused (e.g. Art. 16's 30-day notice)."""


class UsageError(BillingError):
    """Usage data that contradicts itself or the fee table.

    ``path`` names the offending element (``changes[3]``); ``line`` and ``source`` locate it
    in a usage file when the data came from one. Adapters that build ``Usage`` from the
    database get the path only, which is still enough to find the row.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        source: str | None = None,
    ) -> None:
        self.message = message
        self.path = path
        self.line = line
        self.source = source
        super().__init__(message)

    def located(self, source: str, line: int | None) -> UsageError:
        """The same error, placed in file *source* at *line*."""
        return UsageError(self.message, path=self.path, line=line, source=source)

    def __str__(self) -> str:
        where = [self.source] if self.source else []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.path:
            where.append(self.path)
        return f"{', '.join(where)}: {self.message}" if where else self.message
