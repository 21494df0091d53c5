"""Checking a store for damage: checksums of stored values, missing blob files, dangling rows.

Every value row carries the BLAKE3 checksum of its stored bytes (schema version 2); loading a
value verifies it, and :func:`verify` checks a whole store set-at-a-time: values page by page,
dangling rows with one query each, blob files with one listing of the folder. Values written
before checksums existed (checksum NULL) are counted as unverified, not as damaged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from mandala.backends.blobs import BlobStore, file_digest
from mandala.backends.sql import SqlBackend
from mandala.hashing.digest import digest

__all__ = [
    "DamagedValue",
    "DanglingEdge",
    "VerificationReport",
    "add_checksums",
    "file_digest",
    "verify",
]

_PAGE = 1000  # value rows per query of the scan


@dataclass(frozen=True)
class DamagedValue:
    """A stored value whose bytes are wrong or gone, with the calls that output it.

    Attributes:
        content_id: the value's content id.
        call_ids: history ids of the calls that output a ref with this content; dropping them
            (``storage.drop_calls(call_ids, delete_dependents=True)``) and rerunning recomputes it.
        problem: what is wrong, in words.
    """

    content_id: str
    call_ids: tuple[str, ...]
    problem: str


@dataclass(frozen=True)
class DanglingEdge:
    """An input or output of a call whose value row is missing."""

    call_id: str
    direction: str  # "input" or "output"
    name: str
    content_id: str


@dataclass(frozen=True)
class VerificationReport:
    """What :meth:`Storage.verify` found. ``ok`` is True when nothing is damaged.

    Orphan blob files (files no value row points to, e.g. left by a process killed before its
    commit) waste space but damage nothing, so they do not make a report not ``ok``.
    """

    calls_checked: int
    edges_checked: int
    values_checked: int
    values_unverified: int
    """Values without a checksum (written before schema version 2): only their presence is
    checked."""
    blob_files_checked: int
    corrupted_values: tuple[DamagedValue, ...] = ()
    missing_blob_files: tuple[DamagedValue, ...] = ()
    edges_without_values: tuple[DanglingEdge, ...] = ()
    calls_without_edges: tuple[str, ...] = ()
    orphan_blob_files: tuple[str, ...] = ()
    values_without_checksum: tuple[DamagedValue, ...] = ()
    """Values whose bytes cannot be checked: a fault, since damage to them would go unseen."""

    @property
    def ok(self) -> bool:
        return not (
            self.corrupted_values
            or self.missing_blob_files
            or self.values_without_checksum
            or self.edges_without_values
            or self.calls_without_edges
        )

    def __str__(self) -> str:
        lines = [
            f"checked {self.calls_checked} calls, {self.edges_checked} edges, "
            f"{self.values_checked} values ({self.values_unverified} without checksum), "
            f"{self.blob_files_checked} blob files: " + ("ok" if self.ok else "DAMAGED")
        ]
        damaged = [*self.corrupted_values, *self.missing_blob_files]
        for value in (*damaged, *self.values_without_checksum):
            lines.append(
                f"  value {value.content_id}: {value.problem}; output by calls "
                f"{list(value.call_ids) or 'none'}"
            )
        for edge in self.edges_without_values:
            lines.append(
                f"  call {edge.call_id}: {edge.direction} {edge.name!r} points to value "
                f"{edge.content_id}, which is not stored"
            )
        for call_id in self.calls_without_edges:
            lines.append(f"  call {call_id} has no inputs or outputs stored")
        if self.orphan_blob_files:
            lines.append(
                f"  {len(self.orphan_blob_files)} blob files belong to no value (harmless; "
                "e.g. left by an interrupted commit)"
            )
        bad_calls = sorted({c for value in damaged for c in value.call_ids})
        if bad_calls:
            lines.append(
                f"fix: storage.drop_calls({bad_calls!r}, delete_dependents=True), then rerun"
            )
        return "\n".join(lines)


def verify(backend: SqlBackend, blobs: BlobStore | None) -> VerificationReport:
    """Check every value's checksum and blob file, and every call's rows (see the module doc)."""
    corrupted: dict[bytes, str] = {}
    missing: dict[bytes, str] = {}
    unchecked: dict[bytes, str] = {}
    referenced_blobs: set[str] = set()
    values_checked = unverified = blob_files_checked = 0
    after = b""
    while True:
        page = backend.values.values_page(after, _PAGE)
        if not page:
            break
        after = page[-1][0]
        for content_key, data, blob_key, checksum in page:
            values_checked += 1
            if checksum is None:
                unverified += 1
                unchecked[content_key] = (
                    "it has no checksum, so damage to it cannot be detected (written before "
                    "checksums, or adopted from an interrupted write); if its bytes are right, "
                    "storage.add_checksums() records checksums of them as they are"
                )
            try:
                if data is not None:
                    if not isinstance(data, bytes | bytearray | memoryview):
                        corrupted[content_key] = (
                            f"its stored bytes became {type(data).__name__} (the column was "
                            "rewritten as text)"
                        )
                    elif checksum is not None and digest(data) != checksum:
                        corrupted[content_key] = "its stored bytes do not match their checksum"
                    continue
                if blob_key is None:
                    corrupted[content_key] = "it has neither inline bytes nor a blob file"
                    continue
                referenced_blobs.add(blob_key)
                if blobs is None:
                    missing[content_key] = (
                        f"it is in blob file {blob_key!r}, but no blob folder is set"
                    )
                    continue
                path = blobs.describe(blob_key)
                try:
                    actual = blobs.digest(blob_key) if checksum is not None else None
                    if checksum is None and not blobs.exists(blob_key):
                        raise FileNotFoundError(path)
                except FileNotFoundError:
                    missing[content_key] = f"its blob file {path} is missing"
                    continue
                blob_files_checked += 1
                if checksum is not None and actual != checksum:
                    corrupted[content_key] = f"its blob file {path} does not match its checksum"
            except Exception as error:  # noqa: BLE001 - verify reports every fault, never crashes
                corrupted[content_key] = f"it cannot be read ({type(error).__name__}: {error})"
    problems = [*corrupted, *missing, *unchecked]
    creators = backend.calls.value_creators(problems) if problems else {}

    def damaged(problems: dict[bytes, str]) -> tuple[DamagedValue, ...]:
        return tuple(
            DamagedValue(key.hex(), tuple(sorted(k.hex() for k in creators.get(key, []))), problem)
            for key, problem in sorted(problems.items())
        )

    edges = tuple(
        DanglingEdge(call_key.hex(), "output" if direction else "input", name, content_key.hex())
        for call_key, direction, name, content_key in sorted(backend.upkeep.edges_without_values())
    )
    # An op declared with no outputs, called without arguments, legitimately has no edges.
    empty_calls = tuple(
        sorted(
            call_key.hex()
            for call_key, _name, nout in backend.upkeep.calls_without_edges()
            if json.loads(nout) != 0
        )
    )
    orphans: tuple[str, ...] = ()
    if blobs is not None:
        orphans = tuple(sorted(set(blobs.keys()) - referenced_blobs))
    counts = backend.upkeep.counts()
    return VerificationReport(
        calls_checked=counts.calls,
        edges_checked=backend.upkeep.count_edges(),
        values_checked=values_checked,
        values_unverified=unverified,
        blob_files_checked=blob_files_checked,
        corrupted_values=damaged(corrupted),
        missing_blob_files=damaged(missing),
        values_without_checksum=damaged(unchecked),
        edges_without_values=edges,
        calls_without_edges=empty_calls,
        orphan_blob_files=orphans,
    )


def add_checksums(backend: SqlBackend, blobs: BlobStore | None) -> int:
    """Record a checksum for every value stored without one, from its bytes as they are now
    (inline bytes, or its blob file); returns how many were added. Values whose bytes cannot be
    read are left as they are (:func:`verify` lists them)."""
    added: list[tuple[bytes, bytes]] = []
    after = b""
    while True:
        page = backend.values.values_page(after, _PAGE)
        if not page:
            break
        after = page[-1][0]
        for content_key, data, blob_key, checksum in page:
            if checksum is not None:
                continue
            if isinstance(data, bytes | bytearray | memoryview):
                added.append((digest(data), content_key))
            elif data is None and blob_key is not None and blobs is not None:
                try:
                    added.append((blobs.digest(blob_key), content_key))
                except FileNotFoundError:
                    continue
    if added:
        core = backend.core

        def body() -> None:
            core.executemany(
                "UPDATE stored_values SET checksum = ? WHERE content_key = ? AND checksum IS NULL",
                added,
            )

        core.transaction(body)
    return len(added)
