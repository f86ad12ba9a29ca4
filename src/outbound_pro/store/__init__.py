"""Persistence: every SQL statement of Outbound Pro lives in this package.

`open_database` opens (creating if needed) the SQLite file in WAL mode and brings the schema up
to date through the ordered migrations in `store.migrations`. Query modules (`store.accounts`,
`store.registrar`, and later CDRs, recordings, billing, campaigns) take the `Database` and
return declared records, so the rest of the code never sees SQL or rows.
"""

from __future__ import annotations

from outbound_pro.store.db import Database, open_database

__all__ = ["Database", "open_database"]
