"""The rows of code versioning: components, their commit DAGs, versions and their supports.

Versioning state is data like the rest of the store (no pickled object), so a store written by
one release opens in the next and two processes see each other's commits. Each write of the code
state bumps a generation counter in ``meta``, which lets a process keep the state in memory and
re-read it only when someone changed it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from mandala.backends.sql import SqlBackend

__all__ = ["VersionRows", "ComponentRow", "CommitRow", "NewCommit"]

_GENERATION = "versioning_generation"
_ROOTS = "versioning_roots"


class ComponentRow(NamedTuple):
    component_id: int
    module: str
    qualname: str
    kind: str
    path: str | None
    head_content: bytes | None


class CommitRow(NamedTuple):
    component_id: int
    content_hash: bytes
    semantic_hash: bytes
    parent_hash: bytes | None
    created_at: float


class NewCommit(NamedTuple):
    """A commit to write, for a component named by where it lives (it may be new too)."""

    module: str
    qualname: str
    kind: str
    path: str | None
    content_hash: bytes
    semantic_hash: bytes
    parent_hash: bytes | None
    source: str
    created_at: float


class VersionRows:
    """Reads and writes the versioning tables of one store."""

    def __init__(self, backend: SqlBackend) -> None:
        self.backend = backend
        self.core = backend.core

    # ---------------------------------------------------------------- meta

    def _meta(self, key: str) -> str | None:
        with self.core.lock:
            row = self.core.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def generation(self) -> int:
        """A counter bumped by every write of the code state (0 for a store without one)."""
        value = self._meta(_GENERATION)
        return int(value) if value is not None else 0

    def roots(self) -> str | None:
        """The dependency roots the store was versioned with (JSON text), if any."""
        return self._meta(_ROOTS)

    def set_roots(self, roots_json: str) -> None:
        core = self.core

        def body() -> None:
            core.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                (_ROOTS, roots_json),
            )

        core.transaction(body)

    # ---------------------------------------------------------------- code state

    def load_components(self) -> list[ComponentRow]:
        with self.core.lock:
            rows = self.core.execute(
                "SELECT component_id, module, qualname, kind, path, head_content"
                " FROM version_components"
            ).fetchall()
        return [ComponentRow(int(r[0]), r[1], r[2], r[3], r[4], _bytes(r[5])) for r in rows]

    def load_commits(self) -> list[CommitRow]:
        with self.core.lock:
            rows = self.core.execute(
                "SELECT component_id, content_hash, semantic_hash, parent_hash, created_at"
                " FROM version_commits"
            ).fetchall()
        return [
            CommitRow(int(r[0]), bytes(r[1]), bytes(r[2]), _bytes(r[3]), float(r[4])) for r in rows
        ]

    def commit_sources(self, keys: Iterable[tuple[int, bytes]]) -> dict[tuple[int, bytes], str]:
        """Source text (or a global's repr) of the given ``(component_id, content_hash)``."""
        found: dict[tuple[int, bytes], str] = {}
        with self.core.lock:
            for component_id, content_hash in dict.fromkeys(keys):
                row = self.core.execute(
                    "SELECT source FROM version_commits WHERE component_id = ?"
                    " AND content_hash = ?",
                    (component_id, content_hash),
                ).fetchone()
                if row is not None:
                    found[(component_id, content_hash)] = row[0]
        return found

    def load_files(self) -> dict[str, tuple[int, int]]:
        with self.core.lock:
            rows = self.core.execute("SELECT path, mtime_ns, size FROM version_files").fetchall()
        return {r[0]: (int(r[1]), int(r[2])) for r in rows}

    def save_state(
        self,
        commits: Sequence[NewCommit],
        heads: Sequence[tuple[int, bytes]],
        files: Sequence[tuple[str, int, int]],
        stale_files: Sequence[str] = (),
    ) -> dict[tuple[str, str], int]:
        """Write new commits (creating their components), moved heads and file signatures in
        one transaction; returns the ids of the components of ``commits``."""
        core = self.core

        def body() -> dict[tuple[str, str], int]:
            ids: dict[tuple[str, str], int] = {}
            for commit in commits:
                key = (commit.module, commit.qualname)
                if key not in ids:
                    core.execute(
                        "INSERT INTO version_components (module, qualname, kind, path)"
                        " VALUES (?, ?, ?, ?) ON CONFLICT (module, qualname) DO NOTHING",
                        (commit.module, commit.qualname, commit.kind, commit.path),
                    )
                    row = core.execute(
                        "SELECT component_id FROM version_components WHERE module = ?"
                        " AND qualname = ?",
                        key,
                    ).fetchone()
                    ids[key] = int(row[0])
                component_id = ids[key]
                core.execute(
                    "INSERT INTO version_commits (component_id, content_hash, semantic_hash,"
                    " parent_hash, source, created_at) VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (component_id, content_hash) DO NOTHING",
                    (
                        component_id,
                        commit.content_hash,
                        commit.semantic_hash,
                        commit.parent_hash,
                        commit.source,
                        commit.created_at,
                    ),
                )
                core.execute(
                    "UPDATE version_components SET head_content = ?, path = ?"
                    " WHERE component_id = ?",
                    (commit.content_hash, commit.path, component_id),
                )
            for component_id, head in heads:
                core.execute(
                    "UPDATE version_components SET head_content = ? WHERE component_id = ?",
                    (head, component_id),
                )
            for path in stale_files:
                core.execute("DELETE FROM version_files WHERE path = ?", (path,))
            for path, mtime_ns, size in files:
                core.execute(
                    "INSERT INTO version_files (path, mtime_ns, size) VALUES (?, ?, ?)"
                    " ON CONFLICT (path) DO UPDATE SET mtime_ns = excluded.mtime_ns,"
                    " size = excluded.size",
                    (path, mtime_ns, size),
                )
            if commits or heads:
                core.execute(
                    "INSERT INTO meta (key, value) VALUES (?, '1') ON CONFLICT (key) DO UPDATE"
                    " SET value = CAST(CAST(meta.value AS INTEGER) + 1 AS TEXT)",
                    (_GENERATION,),
                )
            return ids

        return core.transaction(body)

    # ---------------------------------------------------------------- versions of calls

    def call_versions(self, pre_call_key: bytes) -> list[tuple[bytes, bytes]]:
        """``(semantic_version, content_version)`` of the stored calls with these input
        contents."""
        with self.core.lock:
            rows = self.core.execute(
                "SELECT semantic_version, content_version FROM call_versions"
                " WHERE pre_call_key = ?",
                (pre_call_key,),
            ).fetchall()
        return [(bytes(r[0]), bytes(r[1])) for r in rows]

    def supports(self, content_versions: Iterable[bytes]) -> dict[bytes, list[tuple[int, bytes]]]:
        """The ``(component_id, content_hash)`` rows of each version."""
        found: dict[bytes, list[tuple[int, bytes]]] = {}
        with self.core.lock:
            for row in self.core.rows_in(
                "SELECT content_version, component_id, content_hash FROM version_support"
                " WHERE content_version IN ({marks})",
                content_versions,
            ):
                found.setdefault(bytes(row[0]), []).append((int(row[1]), bytes(row[2])))
        return found

    def versions(self, op_name: str | None = None) -> list[tuple[bytes, bytes, str, float]]:
        """``(content_version, semantic_version, op_name, created_at)``, oldest first."""
        sql = "SELECT content_version, semantic_version, op_name, created_at FROM versions"
        params: tuple = ()
        if op_name is not None:
            sql += " WHERE op_name = ?"
            params = (op_name,)
        with self.core.lock:
            rows = self.core.execute(sql + " ORDER BY created_at", params).fetchall()
        return [(bytes(r[0]), bytes(r[1]), r[2], float(r[3])) for r in rows]

    def versions_using(self, component_ids: Iterable[int]) -> set[bytes]:
        """Content versions whose support includes one of the components."""
        with self.core.lock:
            return {
                bytes(row[0])
                for row in self.core.rows_in(
                    "SELECT DISTINCT content_version FROM version_support"
                    " WHERE component_id IN ({marks})",
                    component_ids,
                )
            }

    def calls_with_versions(self, content_versions_hex: Iterable[str]) -> list[bytes]:
        """History keys of the stored calls that ran one of these content versions."""
        with self.core.lock:
            return [
                bytes(row[0])
                for row in self.core.rows_in(
                    "SELECT history_key FROM calls WHERE content_version IN ({marks})",
                    content_versions_hex,
                )
            ]

    def delete_versions(self, content_versions: Sequence[bytes]) -> None:
        """Remove versions (their support and candidate rows); their calls are dropped by the
        caller first."""
        core = self.core

        def body() -> None:
            for table in ("versions", "version_support", "call_versions"):
                for start in range(0, len(content_versions), 500):
                    chunk = content_versions[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    core.execute(
                        f"DELETE FROM {table} WHERE content_version IN ({marks})",
                        tuple(chunk),
                    )

        core.transaction(body)


def _bytes(value: object) -> bytes | None:
    return None if value is None else bytes(value)  # type: ignore[call-overload]
