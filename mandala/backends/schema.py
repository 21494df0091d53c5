"""The relational schema, its version, and the ordered migrations between versions.

The schema version is data (the ``meta`` table), not code: a release opens stores whose version
lies in ``[OLDEST_READABLE, CURRENT]``, migrates older ones forward in one transaction, and
refuses newer ones with a clear error instead of misreading them.

Layout (docs/design.md, Data model): ids are 16-byte keys stored as BLOBs; ``call_edges`` holds one row
per call input/output and is indexed both ways (by call, and by ref) so that creators and
consumers of a set of refs are one indexed query each.
"""

from __future__ import annotations

__all__ = [
    "CURRENT",
    "OLDEST_READABLE",
    "MIGRATIONS",
    "SQLITE_DDL_V1",
    "POSTGRES_DDL_V1",
    "SQLITE_DDL",
    "POSTGRES_DDL",
    "migration",
]

CURRENT = 3
OLDEST_READABLE = 1

SQLITE_DDL_V1 = [
    """CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS ops (
        op_id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        output_names TEXT,
        nout TEXT NOT NULL,
        ignore_args TEXT NOT NULL,
        is_structural INTEGER NOT NULL,
        UNIQUE (name, version)
    )""",
    """CREATE TABLE IF NOT EXISTS stored_values (
        content_key BLOB PRIMARY KEY,
        format TEXT NOT NULL,
        size INTEGER NOT NULL,
        data BLOB,
        blob_key TEXT
    ) WITHOUT ROWID""",
    # Calls get a sequential integer id so that the call table and the edge table grow by
    # appending; only the hash lookups (history key, content key, ref key) are random-order
    # B-tree inserts, which is what makes a fresh call's cost grow with the store.
    """CREATE TABLE IF NOT EXISTS calls (
        call_id INTEGER PRIMARY KEY,
        history_key BLOB NOT NULL UNIQUE,
        content_key BLOB NOT NULL,
        op_id INTEGER NOT NULL REFERENCES ops (op_id),
        semantic_version TEXT,
        content_version TEXT,
        started_at REAL,
        duration REAL
    )""",
    "CREATE INDEX IF NOT EXISTS calls_by_content ON calls (content_key)",
    "CREATE INDEX IF NOT EXISTS calls_by_op ON calls (op_id)",
    # One row per input (direction 0) and output (1) of a call. A ref is not a table of its
    # own: its content key and kind travel on every edge that mentions it, so a memo hit reads
    # one range of this table and nothing else.
    """CREATE TABLE IF NOT EXISTS call_edges (
        call_id INTEGER NOT NULL,
        direction INTEGER NOT NULL,
        name TEXT NOT NULL,
        ref_key BLOB NOT NULL,
        content_key BLOB NOT NULL,
        kind INTEGER NOT NULL,
        PRIMARY KEY (call_id, direction, name)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS edges_by_ref ON call_edges (ref_key, direction)",
    """CREATE TABLE IF NOT EXISTS ref_items (
        collection_key BLOB NOT NULL,
        position INTEGER NOT NULL,
        item_key TEXT,
        element_key BLOB NOT NULL,
        element_content_key BLOB NOT NULL,
        element_kind INTEGER NOT NULL,
        PRIMARY KEY (collection_key, position)
    ) WITHOUT ROWID""",
]


def _postgres(statement: str) -> str:
    """The PostgreSQL spelling of a SQLite statement of this schema (same tables and columns)."""
    return (
        statement.replace(" WITHOUT ROWID", "")
        .replace("op_id INTEGER PRIMARY KEY", "op_id BIGSERIAL PRIMARY KEY")
        .replace("component_id INTEGER PRIMARY KEY", "component_id BIGSERIAL PRIMARY KEY")
        .replace("component_id INTEGER NOT NULL", "component_id BIGINT NOT NULL")
        .replace("mtime_ns INTEGER", "mtime_ns BIGINT")
        .replace("call_id INTEGER PRIMARY KEY", "call_id BIGINT PRIMARY KEY")
        .replace("call_id INTEGER NOT NULL", "call_id BIGINT NOT NULL")
        .replace("op_id INTEGER NOT NULL", "op_id BIGINT NOT NULL")
        .replace("size INTEGER", "size BIGINT")
        .replace("BLOB", "BYTEA")
        .replace("REAL", "DOUBLE PRECISION")
    )


POSTGRES_DDL_V1 = [_postgres(statement) for statement in SQLITE_DDL_V1]

MIGRATIONS: dict[int, list[str]] = {
    # version reached -> statements (in the SQLite spelling; see ``migration``) that take a store
    # from the previous version to it. Version 1 is the initial schema; later releases append
    # entries here, never edit them.
    #
    # 2: a BLAKE3 checksum (16 bytes) of every stored value's bytes (inline data or blob file),
    # verified when the value is loaded. NULL on rows written before: those load unverified.
    2: ["ALTER TABLE stored_values ADD COLUMN checksum BLOB"],
    # 3: code versioning as rows (issue 4) and call claims for parallel batches (issue 6).
    3: [
        # One row per component a traced call touched: a function/method ('code') or a global
        # variable ('global'), keyed by where it lives. ``head_content`` is the content hash of
        # the commit checked out at the last sync; ``path`` the file it was read from (None for
        # __main__ code without a file, notebooks, and globals).
        """CREATE TABLE IF NOT EXISTS version_components (
            component_id INTEGER PRIMARY KEY,
            module TEXT NOT NULL,
            qualname TEXT NOT NULL,
            kind TEXT NOT NULL,
            path TEXT,
            head_content BLOB,
            UNIQUE (module, qualname)
        )""",
        # The commit DAG of each component: content hash -> semantic hash (its own for a breaking
        # change, the parent's for a compatible one), with the text shown by code()/diff().
        """CREATE TABLE IF NOT EXISTS version_commits (
            component_id INTEGER NOT NULL,
            content_hash BLOB NOT NULL,
            semantic_hash BLOB NOT NULL,
            parent_hash BLOB,
            source TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (component_id, content_hash)
        )""",
        # A version: the exact set of (component, content) a call ran with.
        """CREATE TABLE IF NOT EXISTS versions (
            content_version BLOB PRIMARY KEY,
            semantic_version BLOB NOT NULL,
            op_name TEXT NOT NULL,
            created_at REAL NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS version_support (
            content_version BLOB NOT NULL,
            component_id INTEGER NOT NULL,
            content_hash BLOB NOT NULL,
            PRIMARY KEY (content_version, component_id)
        )""",
        # Which versions a call with given input contents (the call's content key computed
        # without a version) ran under: the candidates tried before executing it again.
        """CREATE TABLE IF NOT EXISTS call_versions (
            pre_call_key BLOB NOT NULL,
            semantic_version BLOB NOT NULL,
            content_version BLOB NOT NULL,
            PRIMARY KEY (pre_call_key, semantic_version, content_version)
        )""",
        # The stat signature of each source file at the last sync: unchanged files are not
        # re-read when a versioned context is entered.
        """CREATE TABLE IF NOT EXISTS version_files (
            path TEXT PRIMARY KEY,
            mtime_ns INTEGER NOT NULL,
            size INTEGER NOT NULL
        )""",
        # A claim that some process is computing a call, so that concurrent batches on a shared
        # store wait for it instead of computing it twice; expired leases may be taken over.
        """CREATE TABLE IF NOT EXISTS call_claims (
            call_key BLOB PRIMARY KEY,
            owner TEXT NOT NULL,
            lease_until REAL NOT NULL
        )""",
    ],
}


def migration(version: int) -> list[str]:
    """The statements of ``MIGRATIONS[version]``, in SQLite's spelling."""
    return list(MIGRATIONS.get(version, []))


def postgres_migration(version: int) -> list[str]:
    """The statements of ``MIGRATIONS[version]``, in PostgreSQL's spelling."""
    return [_postgres(statement) for statement in MIGRATIONS.get(version, [])]


_STORED_VALUES_V2 = """CREATE TABLE IF NOT EXISTS stored_values (
        content_key BLOB PRIMARY KEY,
        format TEXT NOT NULL,
        size INTEGER NOT NULL,
        data BLOB,
        blob_key TEXT,
        checksum BLOB
    ) WITHOUT ROWID"""

SQLITE_DDL = [
    _STORED_VALUES_V2 if "TABLE IF NOT EXISTS stored_values " in statement else statement
    for statement in SQLITE_DDL_V1
] + MIGRATIONS[3]
"""The current schema (version ``CURRENT``) for a new SQLite store."""

POSTGRES_DDL = [_postgres(statement) for statement in SQLITE_DDL]
"""The current schema (version ``CURRENT``) for a new PostgreSQL store."""
