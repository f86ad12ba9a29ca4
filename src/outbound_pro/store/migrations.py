"""Ordered schema migrations, one sequence per component.

How to add tables (CDRs, recordings, billing, campaigns ...):

1. Append a `Migration` to `MIGRATIONS` with your component name and the next version number of
   *that component* (start at 1). Components are independent sequences, so two engineers adding
   tables to different components never collide on a number.
2. Never edit or reorder a migration that has shipped: the `schema_version` table records the
   highest version applied per component, and a changed migration would not run again. Change a
   shipped table with a new migration (``ALTER TABLE ...``).
3. Statements run one by one inside a single transaction per migration, so a failing migration
   leaves the database as it was. Keep them portable SQL (no SQLite-only syntax beyond
   ``INTEGER PRIMARY KEY``) so a server database can take over later.
4. Put the queries for your tables in a module beside this one (``store/cdrs.py``): SQL lives in
   `store/` and nowhere else.

`open_database` applies pending migrations on every start, so upgrading is: stop, install the
new version, start.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    component: str
    version: int
    description: str
    statements: tuple[str, ...]


_ACCOUNTS_1 = (
    # Contracts: one corporation each. Dates are ISO strings; timestamps are UTC ISO 8601.
    """CREATE TABLE contracts (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        email TEXT NOT NULL,
        domain TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL,
        applied_at TEXT NOT NULL,
        decided_at TEXT,
        refusal_reason TEXT,
        status_reason TEXT,
        start_date TEXT,
        end_date TEXT,
        admin_url TEXT
    )""",
    "CREATE INDEX contracts_status ON contracts (status, id)",
    """CREATE TABLE affiliations (
        id INTEGER PRIMARY KEY,
        contract_id INTEGER NOT NULL REFERENCES contracts (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        policy TEXT NOT NULL,
        added_at TEXT NOT NULL,
        removed_at TEXT
    )""",
    "CREATE UNIQUE INDEX affiliations_name ON affiliations (contract_id, name)"
    " WHERE removed_at IS NULL",
    # Admin, sub-admin and user IDs. `login` is unique inside a contract among live IDs.
    """CREATE TABLE ids (
        id INTEGER PRIMARY KEY,
        contract_id INTEGER NOT NULL REFERENCES contracts (id) ON DELETE CASCADE,
        login TEXT NOT NULL,
        role TEXT NOT NULL,
        status TEXT NOT NULL,
        display_name TEXT NOT NULL DEFAULT '',
        affiliation_id INTEGER REFERENCES affiliations (id),
        password_hash TEXT NOT NULL,
        ha1_md5 TEXT,
        ha1_sha256 TEXT,
        added_at TEXT NOT NULL,
        removed_at TEXT
    )""",
    "CREATE UNIQUE INDEX ids_login ON ids (contract_id, login) WHERE removed_at IS NULL",
    "CREATE INDEX ids_contract ON ids (contract_id, role)",
    """CREATE TABLE subadmin_scopes (
        id_id INTEGER NOT NULL REFERENCES ids (id) ON DELETE CASCADE,
        affiliation_id INTEGER NOT NULL REFERENCES affiliations (id) ON DELETE CASCADE,
        PRIMARY KEY (id_id, affiliation_id)
    )""",
    # Telephone numbers bound to user IDs; rows are kept after removal for billing history.
    """CREATE TABLE numbers (
        id INTEGER PRIMARY KEY,
        contract_id INTEGER NOT NULL REFERENCES contracts (id) ON DELETE CASCADE,
        id_id INTEGER NOT NULL REFERENCES ids (id) ON DELETE CASCADE,
        e164 TEXT NOT NULL,
        added_at TEXT NOT NULL,
        removed_at TEXT
    )""",
    "CREATE UNIQUE INDEX numbers_live ON numbers (e164) WHERE removed_at IS NULL",
    "CREATE INDEX numbers_owner ON numbers (id_id)",
    # SIP devices (billed per channel) and the SIP accounts (numbers) set on them.
    """CREATE TABLE devices (
        id INTEGER PRIMARY KEY,
        contract_id INTEGER NOT NULL REFERENCES contracts (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        affiliation_id INTEGER REFERENCES affiliations (id),
        note TEXT NOT NULL DEFAULT '',
        added_at TEXT NOT NULL,
        removed_at TEXT
    )""",
    "CREATE UNIQUE INDEX devices_name ON devices (contract_id, name) WHERE removed_at IS NULL",
    """CREATE TABLE device_accounts (
        id INTEGER PRIMARY KEY,
        device_id INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
        e164 TEXT NOT NULL,
        added_at TEXT NOT NULL,
        removed_at TEXT
    )""",
    "CREATE UNIQUE INDEX device_accounts_live ON device_accounts (device_id, e164)"
    " WHERE removed_at IS NULL",
    """CREATE TABLE operators (
        id INTEGER PRIMARY KEY,
        login TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        added_at TEXT NOT NULL,
        removed_at TEXT
    )""",
    # Web sessions: only a SHA-256 of the token is stored, so a copy of the database cannot
    # be used to log in.
    """CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        subject_kind TEXT NOT NULL,
        subject_id INTEGER NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        idle_expires_at REAL NOT NULL,
        source TEXT NOT NULL
    )""",
    "CREATE INDEX sessions_subject ON sessions (subject_kind, subject_id)",
    """CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        source TEXT NOT NULL,
        contract_id INTEGER,
        affiliation_id INTEGER,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        outcome TEXT NOT NULL,
        detail TEXT NOT NULL
    )""",
    "CREATE INDEX audit_contract ON audit_log (contract_id, id)",
    # Notices to contractors (Art. 21-2, 34): an outbox a mailer drains.
    """CREATE TABLE notices (
        id INTEGER PRIMARY KEY,
        contract_id INTEGER NOT NULL REFERENCES contracts (id) ON DELETE CASCADE,
        email TEXT NOT NULL,
        subject TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL,
        sent_at TEXT
    )""",
    """CREATE TABLE trunks (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        host TEXT NOT NULL,
        port INTEGER NOT NULL,
        transport TEXT NOT NULL,
        username TEXT NOT NULL,
        password TEXT NOT NULL,
        trusted_sources TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )""",
)

_REGISTRAR_1 = (
    """CREATE TABLE sip_bindings (
        id INTEGER PRIMARY KEY,
        contract_id INTEGER NOT NULL REFERENCES contracts (id) ON DELETE CASCADE,
        id_id INTEGER NOT NULL REFERENCES ids (id) ON DELETE CASCADE,
        aor TEXT NOT NULL,
        contact TEXT NOT NULL,
        q REAL NOT NULL,
        expires_at REAL NOT NULL,
        call_id TEXT NOT NULL,
        cseq INTEGER NOT NULL,
        transport TEXT NOT NULL,
        source_host TEXT NOT NULL,
        source_port INTEGER NOT NULL,
        user_agent TEXT NOT NULL DEFAULT '',
        instance TEXT NOT NULL DEFAULT '',
        updated_at REAL NOT NULL
    )""",
    "CREATE UNIQUE INDEX sip_bindings_key ON sip_bindings (id_id, aor, contact)",
    "CREATE INDEX sip_bindings_contract ON sip_bindings (contract_id)",
    "CREATE INDEX sip_bindings_expiry ON sip_bindings (expires_at)",
)

# Billing (queries in store/billing.py). Issued invoices are insert-only there.
_BILLING_1 = (
    # Outages the operator recorded as "wholly unusable" (Art. 29-1). Timestamps are ISO 8601
    # with their zone as entered; billing places them in a month in Japan time.
    """CREATE TABLE billing_outages (
        id INTEGER PRIMARY KEY,
        contract_id INTEGER NOT NULL REFERENCES contracts (id),
        recognised TEXT NOT NULL,
        restored TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT '',
        recorded_at TEXT NOT NULL
    )""",
    "CREATE INDEX billing_outages_contract ON billing_outages (contract_id)",
    # `revision` 0 is the month's first invoice; a replacement after a credit note is 1, 2, ...
    # The unique index makes a second monthly run (or two runs at once) unable to issue the
    # same contract's month twice.
    """CREATE TABLE billing_invoices (
        number TEXT PRIMARY KEY,
        contract_id INTEGER NOT NULL REFERENCES contracts (id),
        month TEXT NOT NULL,
        kind TEXT NOT NULL,
        revision INTEGER NOT NULL,
        refers_to TEXT REFERENCES billing_invoices (number),
        issue_date TEXT NOT NULL,
        due_date TEXT NOT NULL,
        total INTEGER NOT NULL,
        body TEXT NOT NULL,
        issued_at TEXT NOT NULL
    )""",
    "CREATE UNIQUE INDEX billing_invoices_revision"
    " ON billing_invoices (contract_id, month, kind, revision)",
    # An invoice is cancelled at most once.
    "CREATE UNIQUE INDEX billing_invoices_refers_to ON billing_invoices (refers_to)",
    """CREATE TABLE billing_payments (
        id INTEGER PRIMARY KEY,
        invoice_number TEXT NOT NULL REFERENCES billing_invoices (number),
        contract_id INTEGER NOT NULL REFERENCES contracts (id),
        paid_on TEXT NOT NULL,
        amount INTEGER NOT NULL,
        recorded_at TEXT NOT NULL
    )""",
    "CREATE INDEX billing_payments_contract ON billing_payments (contract_id, paid_on)",
    "CREATE INDEX billing_payments_invoice ON billing_payments (invoice_number)",
    """CREATE TABLE billing_mail (
        invoice_number TEXT PRIMARY KEY REFERENCES billing_invoices (number),
        address TEXT NOT NULL,
        sent_at TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT NOT NULL DEFAULT ''
    )""",
)

_CALLS_1 = (
    # One CDR per call (b2bua.record.CallRecord); written at set-up, updated at the end.
    """CREATE TABLE call_records (
        id INTEGER PRIMARY KEY,
        call_ref TEXT NOT NULL UNIQUE,
        direction TEXT NOT NULL,
        contract_id INTEGER,
        id_id INTEGER,
        affiliation_id INTEGER,
        booth TEXT NOT NULL DEFAULT '',
        caller TEXT NOT NULL DEFAULT '',
        callee TEXT NOT NULL DEFAULT '',
        trunk TEXT NOT NULL DEFAULT '',
        a_call_id TEXT NOT NULL DEFAULT '',
        b_call_id TEXT NOT NULL DEFAULT '',
        setup_at REAL NOT NULL,
        ringing_at REAL,
        answer_at REAL,
        end_at REAL,
        hangup_by TEXT NOT NULL DEFAULT '',
        status INTEGER NOT NULL DEFAULT 0,
        reason TEXT NOT NULL DEFAULT '',
        codec_a TEXT NOT NULL DEFAULT '',
        codec_b TEXT NOT NULL DEFAULT '',
        media_a TEXT,
        media_b TEXT,
        recording_id INTEGER
    )""",
    "CREATE INDEX call_records_contract_time ON call_records (contract_id, setup_at)",
    "CREATE INDEX call_records_open ON call_records (end_at)",
    """CREATE TABLE recordings (
        id INTEGER PRIMARY KEY,
        call_ref TEXT NOT NULL,
        contract_id INTEGER NOT NULL,
        id_id INTEGER,
        affiliation_id INTEGER,
        booth TEXT NOT NULL DEFAULT '',
        caller TEXT NOT NULL DEFAULT '',
        callee TEXT NOT NULL DEFAULT '',
        direction TEXT NOT NULL,
        started_at REAL NOT NULL,
        ended_at REAL,
        duration REAL NOT NULL DEFAULT 0,
        size INTEGER NOT NULL DEFAULT 0,
        sha256 TEXT NOT NULL DEFAULT '',
        path TEXT NOT NULL,
        state TEXT NOT NULL,
        expires_at REAL NOT NULL
    )""",
    "CREATE INDEX recordings_contract_time ON recordings (contract_id, started_at)",
    "CREATE INDEX recordings_expiry ON recordings (expires_at)",
    # Per-booth paid options the accounts model does not carry (yet): 360-day retention.
    """CREATE TABLE booth_options (
        id_id INTEGER PRIMARY KEY,
        retention_extended INTEGER NOT NULL DEFAULT 0
    )""",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration("accounts", 1, "contracts, IDs, numbers, affiliations, devices, audit", _ACCOUNTS_1),
    Migration("registrar", 1, "SIP registrations (bindings)", _REGISTRAR_1),
    Migration("billing", 1, "outages, issued invoices, payments, invoice mail", _BILLING_1),
    Migration("calls", 1, "CDRs, recordings index, booth recording options", _CALLS_1),
)
