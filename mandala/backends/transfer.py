"""Copying calls, with everything they need, from one store into another.

The unit of copying is a call: its row, its edges, its op, the element rows of the collections it
mentions and the values of its atoms (inline, or blob files copied file to file). A selection of
calls is first closed under dependencies (the creators of their inputs, recursively, and of the
elements of collections), so the target can answer every copied call as a memo hit and load
every value. Calls the target already has are skipped; everything else is written with the
target's ordinary idempotent ``write``, one transaction per batch, so copying twice adds nothing
and an interrupted copy resumes where it stopped. Any two backends work (SQLite, PostgreSQL).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from mandala.backends.blobs import BlobStore
from mandala.backends.records import (
    DIRECTION_IN,
    DIRECTION_OUT,
    KIND_ATOM,
    KIND_POINTER,
    ItemRow,
    OpRow,
    StoredCall,
    WriteBatch,
)
from mandala.backends.sql import SqlBackend
from mandala.backends.value_reader import copy_hashed
from mandala.errors import CorruptValueError, SerializationError, UnsafePickleError
from mandala.hashing.digest import digest
from mandala.hashing.serialization import get_format

__all__ = ["CopyReport", "dependency_closure", "copy_calls"]

logger = logging.getLogger(__name__)

_BATCH = 2000  # calls per target transaction


@dataclass(frozen=True)
class CopyReport:
    """What :func:`copy_calls` did.

    Attributes:
        calls_copied: calls written to the target.
        calls_skipped: selected calls the target already had.
        values_copied: value rows sent to the target (rows it already had are left as they are).
        blob_files_copied: blob files written into the target's blob folder.
    """

    calls_copied: int
    calls_skipped: int
    values_copied: int
    blob_files_copied: int


def _collections(refs: Iterable[tuple[bytes, int]]) -> list[bytes]:
    return [key for key, kind in refs if kind not in (KIND_ATOM, KIND_POINTER)]


def _items_closure(source: SqlBackend, collection_keys: Sequence[bytes]) -> list[ItemRow]:
    """Element rows of these collections and of the collections nested in them."""
    rows: list[ItemRow] = []
    seen: set[bytes] = set()
    frontier = list(dict.fromkeys(collection_keys))
    while frontier:
        seen.update(frontier)
        shapes = source.values.load_shapes(frontier)
        frontier = []
        for collection_key, items in shapes.items():
            for item in items:
                element = item.element
                rows.append(
                    ItemRow(
                        collection_key,
                        item.position,
                        item.item_key,
                        element.history_key,
                        element.content_key,
                        element.kind,
                    )
                )
                if (
                    element.kind not in (KIND_ATOM, KIND_POINTER)
                    and element.history_key not in seen
                ):
                    frontier.append(element.history_key)
        frontier = list(dict.fromkeys(frontier))
    return rows


def dependency_closure(source: SqlBackend, call_keys: Sequence[bytes]) -> list[bytes]:
    """The given calls plus, recursively, the creators of their inputs and of the elements of
    the collections among their inputs and outputs (one query per level, not per call)."""
    result = set(call_keys)
    frontier = list(result)
    while frontier:
        calls = source.calls.load_calls_set(frontier)
        refs = {(o.history_key, o.kind) for c in calls for o in (*c.inputs, *c.outputs)}
        wanted = [o.history_key for c in calls for o in c.inputs]
        wanted.extend(row.element_key for row in _items_closure(source, _collections(refs)))
        creators = source.calls.creators(list(dict.fromkeys(wanted)))
        frontier = [k for keys in creators.values() for k in keys if k not in result]
        frontier = list(dict.fromkeys(frontier))
        result.update(frontier)
    return sorted(result)


def _copy_blob(
    source_blobs: BlobStore, target_blobs: BlobStore, blob_key: str
) -> tuple[bool, bytes]:
    """Copy one blob file, hashing it on the way; returns (whether written, its checksum)."""
    checksums: list[bytes] = []

    def write(file: BinaryIO) -> None:
        with source_blobs.open(blob_key) as source_file:
            checksums.append(copy_hashed(source_file, file))

    if target_blobs.exists(blob_key):
        with source_blobs.open(blob_key) as source_file:
            return False, copy_hashed(source_file)
    target_blobs.write(blob_key, write)
    return True, checksums[-1]


def _value_rows(
    source: SqlBackend,
    source_blobs: BlobStore | None,
    target: SqlBackend,
    target_blobs: BlobStore | None,
    content_keys: Sequence[bytes],
) -> tuple[list[tuple], int]:
    """Value rows for the target (blob files copied first), each verified against its checksum.

    Raises:
        CorruptValueError: a source value is damaged (nothing of this batch is written).
    """
    present = target.values.has_values(content_keys)
    wanted = [k for k in content_keys if k not in present]
    rows: list[tuple] = []
    blob_files = 0
    loaded = source.values.load_values(wanted)
    for key in wanted:
        if key not in loaded:
            calls = [k.hex() for k in source.calls.value_creators([key]).get(key, [])]
            raise CorruptValueError(
                f"cannot copy value {key.hex()}: the source store has no row for it; it was output"
                f" by the calls {calls}: drop them in the source (storage.drop_calls([...],"
                " delete_dependents=True)), rerun them, then copy again"
            )
    for key, value in sorted(loaded.items()):
        data, blob_key, checksum = value.data, value.blob_key, value.checksum
        problem = None
        if data is not None:
            actual = digest(data)
            if checksum is not None and actual != checksum:
                problem = "its stored bytes do not match their checksum"
            rows.append((key, value.format, value.size, data, None, actual))
        elif blob_key is None or source_blobs is None:
            problem = "it is in a blob file but the source storage has no blob folder"
        else:
            try:
                if target_blobs is None:
                    # The target keeps every value in the database: the file's bytes go inline.
                    with source_blobs.open(blob_key) as file:
                        data = file.read()
                    actual = digest(data)
                    rows.append((key, value.format, value.size, data, None, actual))
                else:
                    # A mismatching copy is written before the check fails, but no row points
                    # at it; ``verify`` lists it as an orphan blob file.
                    written, actual = _copy_blob(source_blobs, target_blobs, blob_key)
                    blob_files += written
                    rows.append((key, value.format, value.size, None, blob_key, actual))
            except FileNotFoundError:
                problem = f"its blob file {source_blobs.describe(blob_key)} is missing"
            else:
                if checksum is not None and actual != checksum:
                    problem = f"its blob file {source_blobs.describe(blob_key)} does not match"
        if problem is not None:
            calls = [k.hex() for k in source.calls.value_creators([key]).get(key, [])]
            raise CorruptValueError(
                f"cannot copy value {key.hex()}: {problem} in the source store; it was output "
                f"by the calls {calls}: run source.verify(), drop those calls in the source "
                "(storage.drop_calls([...], delete_dependents=True)), rerun them, then copy again"
            )
    return rows, blob_files


def _batch_rows(calls: Sequence[StoredCall], ops: dict[tuple[str, int], OpRow]) -> WriteBatch:
    batch = WriteBatch()
    batch.ops = list(
        {(c.op_name, c.op_version): ops[(c.op_name, c.op_version)] for c in calls}.values()
    )
    for c in calls:
        batch.calls.append(
            (
                c.history_key,
                c.content_key,
                c.op_name,
                c.op_version,
                c.semantic_version,
                c.content_version,
                c.started_at,
                c.duration,
            )
        )
        for direction, edges in ((DIRECTION_IN, c.inputs), (DIRECTION_OUT, c.outputs)):
            for o in edges:
                batch.edges.append(
                    (c.history_key, direction, o.name, o.history_key, o.content_key, o.kind)
                )
    return batch


def _atoms_of(source: SqlBackend, calls: Sequence[StoredCall]) -> tuple[list[ItemRow], list[bytes]]:
    """The element rows of the collections these calls mention, and the content keys of every
    atom they (and those collections) hold."""
    refs = {(o.history_key, o.kind) for c in calls for o in (*c.inputs, *c.outputs)}
    items = _items_closure(source, _collections(refs))
    atoms = {o.content_key for c in calls for o in (*c.inputs, *c.outputs) if o.kind == KIND_ATOM}
    atoms.update(row.element_content_key for row in items if row.element_kind == KIND_ATOM)
    return items, sorted(atoms)


def _refuse_pickles(source: SqlBackend, call_keys: Sequence[bytes], batch_size: int) -> None:
    """Raise UnsafePickleError, naming the ops, if any value of these calls is pickled."""
    pickled: dict[bytes, str] = {}
    for start in range(0, len(call_keys), batch_size):
        calls = source.calls.load_calls_set(call_keys[start : start + batch_size])
        _, content_keys = _atoms_of(source, calls)
        formats = source.values.formats(content_keys)
        unsafe = {k for k, name in formats.items() if _uses_pickle(name)}
        for c in calls:
            for o in (*c.inputs, *c.outputs):
                if o.content_key in unsafe:
                    pickled.setdefault(o.content_key, f"{c.op_name} ({o.name})")
        for key in unsafe:
            pickled.setdefault(key, "an element of a collection")
    if pickled:
        where = sorted(set(pickled.values()))
        shown = ", ".join(where[:5]) + (f" and {len(where) - 5} more" if len(where) > 5 else "")
        raise UnsafePickleError(
            f"refusing to copy {len(pickled)} pickled value(s) from a store opened with "
            f"allow_pickle=False (values of {shown}): the target would unpickle them, which can "
            "run code from the source store. If you trust that store, open it with "
            "allow_pickle=True and copy again; else copy only calls without such values "
            "(copy_to(..., calls=[...]))"
        )


def _uses_pickle(format_name: str) -> bool:
    try:
        return get_format(format_name).uses_pickle
    except SerializationError:
        return True  # an unknown format: treat as unsafe


def copy_calls(
    source: SqlBackend,
    source_blobs: BlobStore | None,
    target: SqlBackend,
    target_blobs: BlobStore | None,
    call_keys: Sequence[bytes] | None = None,
    batch_size: int = _BATCH,
    allow_pickle: bool = True,
) -> CopyReport:
    """Copy calls (all of them, or ``call_keys`` and their dependencies) from ``source`` into
    ``target``; see the module doc.

    ``allow_pickle=False`` (the source is not trusted) refuses, before anything is written, to
    copy values stored with pickle: bytes copied as they are would be unpickled by the target,
    which trusts its own values, so the source's code would run there.

    Raises:
        CorruptValueError: a value to copy is damaged in the source (batches before it are
            written; a rerun after the repair copies the rest).
        UnsafePickleError: ``allow_pickle`` is False and values to copy are pickled.
    """
    if call_keys is None:
        selected = sorted(source.calls.all_call_keys())
    else:
        selected = dependency_closure(source, list(call_keys))
    present = target.calls.has_calls(selected) if selected else set()
    todo = [k for k in selected if k not in present]
    ops = {(row.name, row.version): row for row in source.calls.ops()}
    if not allow_pickle:
        _refuse_pickles(source, todo, batch_size)
    copied = values = blob_files = 0
    for start in range(0, len(todo), batch_size):
        calls = source.calls.load_calls_set(todo[start : start + batch_size])
        batch = _batch_rows(calls, ops)
        items, content_keys = _atoms_of(source, calls)
        batch.items = list(items)
        batch.values, written = _value_rows(
            source, source_blobs, target, target_blobs, content_keys
        )
        target.write(batch)
        copied += len(calls)
        values += len(batch.values)
        blob_files += written
    logger.info(
        "Copied %d calls (%d already there), %d values, %d blob files.",
        copied,
        len(present),
        values,
        blob_files,
    )
    return CopyReport(copied, len(present), values, blob_files)
