"""The write-back cache between the engine and a backend.

Calls found or made in this session are remembered compactly (call history key -> its outputs)
so repeated calls are a dict lookup. New rows accumulate in memory and reach the backend in one
transaction at :meth:`Session.commit`. Values are serialized when their call is recorded (so a
value mutated afterwards cannot change what was stored, and an unserializable value is reported
at the call that made it); large values go straight to content-addressed blob files, and only
their row waits for the commit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from typing import Any, BinaryIO

from mandala.backends.blobs import BlobStore
from mandala.backends.records import (
    DIRECTION_IN,
    DIRECTION_OUT,
    OpRow,
    ShapeItem,
    StoredCall,
    StoredOutput,
    WriteBatch,
)
from mandala.backends.sql import SqlBackend
from mandala.backends.value_reader import ValueReader
from mandala.errors import ValueNotFoundError
from mandala.hashing import serialization
from mandala.hashing.digest import Hasher, digest
from mandala.model.calls import Call, OpSpec
from mandala.model.kinds import ref_kind
from mandala.model.refs import Ref

__all__ = ["Session", "CompactOutputs"]

logger = logging.getLogger(__name__)

CompactOutputs = tuple[tuple[str, bytes, bytes, int], ...]
"""A call's outputs as ``(name, history_key, content_key, kind)`` tuples: small in memory."""


def op_row(spec: OpSpec) -> OpRow:
    return OpRow.of(spec)


class Session:
    """Cache and pending writes of one Storage over one backend.

    Args:
        backend: the persistent store (see ``mandala.backends``).
        blobs: where values of ``blob_threshold`` bytes and more are written, or None to keep
            every value inside the database.
        blob_threshold: size in bytes from which a value goes to ``blobs``.
        allow_pickle: False refuses to read values stored with pickle (which can run code) and
            to write values that need it.
        durable: True commits each call as soon as it is recorded (see :meth:`call_recorded`),
            so a crash loses at most the call in flight; False leaves the commit to the caller.
    """

    def __init__(
        self,
        backend: SqlBackend,
        blobs: BlobStore | None,
        blob_threshold: int,
        allow_pickle: bool = True,
        durable: bool = False,
    ) -> None:
        self.backend = backend
        self.reader = ValueReader(blobs, allow_pickle, backend.calls.value_creators)
        """Checks and decodes every value this session loads (and a frame's bulk reads)."""
        self.durable = durable
        self.blobs = blobs
        self.blob_threshold = blob_threshold
        self.calls: dict[bytes, CompactOutputs] = {}
        self.lock = threading.RLock()
        """Held while recording a call and while committing, so threads sharing a storage never
        commit half of a call."""
        self._reset_pending()
        self._registered_ops: set[tuple[str, int]] = set()

    @property
    def allow_pickle(self) -> bool:
        """Whether values stored with pickle may be read (and values needing it written)."""
        return self.reader.allow_pickle

    @allow_pickle.setter
    def allow_pickle(self, allow: bool) -> None:
        self.reader.allow_pickle = allow

    def _reset_pending(self) -> None:
        self.pending_calls: dict[bytes, Call] = {}
        self._pending_by_content: dict[bytes, bytes] = {}
        self._pending_creators: dict[bytes, bytes] = {}
        self._values: dict[bytes, tuple] = {}
        self._refs: dict[bytes, tuple] = {}
        self._items: dict[bytes, list[tuple]] = {}
        self._edges: list[tuple] = []
        self._ops: dict[tuple[str, int], OpRow] = {}
        # Code versioning rows (empty for an unversioned storage).
        self._versions: dict[bytes, tuple] = {}
        self._version_support: dict[tuple[bytes, int], tuple] = {}
        self._call_versions: set[tuple[bytes, bytes, bytes]] = set()

    # ------------------------------------------------------------------ state

    @property
    def is_dirty(self) -> bool:
        return bool(self.pending_calls or self._values or self._ops or self._call_versions)

    def pending_counts(self) -> dict[str, int]:
        return {
            "calls": len(self.pending_calls),
            "refs": len(self._refs),
            "values": len(self._values),
            "ops": len(self._ops),
        }

    def clear(self) -> None:
        """Forget cached calls (pending writes must have been committed or discarded)."""
        self.calls = {}
        self._reset_pending()
        self._registered_ops = set()

    # ------------------------------------------------------------------ lookups

    def lookup(self, call_key: bytes) -> CompactOutputs | None:
        """Outputs of the call with this history key, from the cache or the store."""
        found = self.calls.get(call_key)
        if found is not None:
            return found
        stored = self.backend.calls.find_outputs(call_key)
        if stored is None:
            return None
        compact = tuple((o.name, o.history_key, o.content_key, o.kind) for o in stored)
        self.calls[call_key] = compact
        return compact

    def find(
        self, history_key: bytes, content_key: bytes
    ) -> tuple[CompactOutputs | None, bytes | None]:
        """Look a call up by history key, then by content key (pending calls first).

        Returns ``(outputs, None)`` when the call is known, ``(None, prototype_history_key)``
        when only a call with equal input contents is, and ``(None, None)`` otherwise.
        """
        found = self.calls.get(history_key)
        if found is not None:
            return found, None
        pending = self._pending_by_content.get(content_key)
        if pending is not None:
            return None, pending
        outputs, prototype = self.backend.calls.find_call(history_key, content_key)
        if outputs is None:
            return None, prototype
        compact = tuple((o.name, o.history_key, o.content_key, o.kind) for o in outputs)
        self.calls[history_key] = compact
        return compact, None

    def find_by_content(self, content_key: bytes) -> bytes | None:
        """History key of some call with this content key, pending or stored."""
        found = self._pending_by_content.get(content_key)
        if found is not None:
            return found
        return self.backend.calls.find_call_by_content(content_key)

    def pending_ref(self, history_key: bytes) -> tuple[bytes, int] | None:
        """``(content_key, kind)`` of a ref recorded in this session but not committed yet."""
        row = self._refs.get(history_key)
        return (row[1], row[2]) if row is not None else None

    def has_call(self, call_key: bytes) -> bool:
        return call_key in self.calls or bool(self.backend.calls.has_calls([call_key]))

    def load_calls(self, call_keys: Sequence[bytes]) -> list[StoredCall | Call]:
        """Calls by history key, pending ones as :class:`Call`, stored ones as records."""
        pending = self.pending_calls
        result: list[StoredCall | Call] = []
        missing = [key for key in call_keys if key not in pending]
        stored = (
            {c.history_key: c for c in self.backend.calls.load_calls(missing)} if missing else {}
        )
        for key in call_keys:
            if key in pending:
                result.append(pending[key])
            elif key in stored:
                result.append(stored[key])
        return result

    def creators(self, ref_keys: Sequence[bytes]) -> dict[bytes, list[bytes]]:
        found = self.backend.calls.creators(ref_keys)
        for key in ref_keys:
            creator = self._pending_creators.get(key)
            if creator is not None and creator not in found.get(key, []):
                found.setdefault(key, []).append(creator)
        return found

    def consumers(self, ref_keys: Sequence[bytes]) -> dict[bytes, list[bytes]]:
        found = self.backend.calls.consumers(ref_keys)
        wanted = set(ref_keys)
        for call in self.pending_calls.values():
            for ref in call.inputs.values():
                if ref.history_key in wanted:
                    callers = found.setdefault(ref.history_key, [])
                    if call.history_key not in callers:
                        callers.append(call.history_key)
        return found

    # ------------------------------------------------------------------ values and shapes

    def load_shapes(self, collection_keys: Sequence[bytes]) -> dict[bytes, list[ShapeItem]]:
        shapes: dict[bytes, list[ShapeItem]] = {}
        missing = []
        for key in collection_keys:
            rows = self._items.get(key)
            if rows is None:
                missing.append(key)
                continue
            shapes[key] = [
                ShapeItem(position, item_key, StoredOutput("", element_key, content, kind))
                for _, position, item_key, element_key, content, kind in rows
            ]
        if missing:
            shapes.update(self.backend.values.load_shapes(missing))
        return shapes

    def load_values(self, content_keys: Iterable[bytes]) -> dict[bytes, Any]:
        """Values by content key (pending ones from memory, others from the store).

        Raises:
            ValueNotFoundError: a key is not stored.
        """
        keys = list(dict.fromkeys(content_keys))
        result: dict[bytes, Any] = {}
        missing = []
        pending = self._values
        for key in keys:
            row = pending.get(key)
            if row is not None:
                # Decoded from the recorded bytes, not the live object: a caller may have
                # mutated the object since, and a hit must give what was stored.
                result[key] = self.reader.decode(key, row[1], row[3], row[4], None)
            else:
                missing.append(key)
        if missing:
            stored = self.backend.values.load_values(missing)
            for key in missing:
                row = stored.get(key)
                if row is None:
                    raise ValueNotFoundError(
                        f"value {key.hex()} is not in this storage (was the ref made by another "
                        "storage, or were its calls dropped and cleaned up?)"
                    )
                result[key] = self.reader.decode(
                    row.content_key, row.format, row.data, row.blob_key, row.checksum
                )
        return result

    # ------------------------------------------------------------------ recording

    def register_op(self, spec: OpSpec) -> None:
        key = (spec.name, spec.version)
        if key not in self._registered_ops:
            self._ops[key] = op_row(spec)
            self._registered_ops.add(key)

    def record_value(self, content_key: bytes, value: Any) -> bool:
        """Serialize a value for storage now, unless already pending; True if it was new.

        Raises:
            SerializationError: the value cannot be serialized (the caller adds the context).
        """
        if content_key in self._values:
            return False
        blobs = self.blobs
        if blobs is not None:
            size = serialization.estimated_size(value)
            if size is not None and size >= self.blob_threshold:
                self._values[content_key] = self._write_blob(content_key, value, size)
                return True
        fmt, data = serialization.encode(value, allow_pickle=self.allow_pickle)
        if blobs is not None and len(data) >= self.blob_threshold:
            blob_key = content_key.hex()
            blobs.write(blob_key, lambda file: file.write(data))
            self._values[content_key] = (content_key, fmt, len(data), None, blob_key, digest(data))
        else:
            self._values[content_key] = (content_key, fmt, len(data), data, None, digest(data))
        return True

    def discard_values(self, content_keys: Iterable[bytes]) -> None:
        """Drop pending values (those recorded for a call that then failed)."""
        for key in content_keys:
            self._values.pop(key, None)

    def _write_blob(self, content_key: bytes, value: Any, size: int) -> tuple:
        blob_key = content_key.hex()
        assert self.blobs is not None
        allow_pickle = self.allow_pickle

        def write(file: BinaryIO) -> tuple[str, bytes]:
            # The checksum is taken from the bytes on their way to the file: never read back.
            hashing = _HashingWriter(file)
            fmt = serialization.write_to_file(value, hashing, allow_pickle=allow_pickle)  # type: ignore[arg-type]
            return fmt, hashing.hasher.key()

        blobs = self.blobs
        written = blobs.write(blob_key, write)
        if written is not None:
            fmt, checksum = written
        elif self.backend.values.has_checksum(content_key):
            # The file belongs to a committed value row, which keeps its checksum.
            fmt, checksum = serialization.format_for(value, allow_pickle=allow_pickle), None
        else:
            # No committed row vouches for the file: a writer died between writing it and
            # committing its row (or the row predates checksums). Adopt it only if its bytes are
            # those of the value, else replace it: a row never goes without a checksum.
            sink = _HashingWriter(_Discard())
            fmt = serialization.write_to_file(value, sink, allow_pickle=allow_pickle)  # type: ignore[arg-type]
            checksum = sink.hasher.key()
            if blobs.digest(blob_key) != checksum:
                logger.warning(
                    "blob file %s did not hold the bytes of value %s (left by an interrupted "
                    "writer?): rewritten",
                    blobs.describe(blob_key),
                    blob_key,
                )
                blobs.delete(blob_key)
                rewritten = blobs.write(blob_key, write)
                if rewritten is not None:
                    fmt, checksum = rewritten
        return (content_key, fmt, size, None, blob_key, checksum)

    def record_ref(self, ref: Ref, kind: int) -> None:
        """Remember a new ref until the commit (refs are stored as part of call edges)."""
        key = ref.history_key
        if key not in self._refs:
            self._refs[key] = (key, ref.content_key, kind)

    def record_items(self, collection_key: bytes, items: list[tuple]) -> None:
        if collection_key not in self._items:
            self._items[collection_key] = items

    def record_call(self, call: Call) -> None:
        """Add a call (whose refs and values were recorded) to the pending writes."""
        key = call.history_key
        if key in self.pending_calls:
            return
        self.pending_calls[key] = call
        self._pending_by_content.setdefault(call.content_key, key)
        edges = self._edges
        for name, ref in call.inputs.items():
            edges.append((key, DIRECTION_IN, name, ref.history_key, ref.content_key, ref_kind(ref)))
        outputs = []
        for name, ref in call.outputs.items():
            kind = ref_kind(ref)
            edges.append((key, DIRECTION_OUT, name, ref.history_key, ref.content_key, kind))
            self._pending_creators[ref.history_key] = key
            outputs.append((name, ref.history_key, ref.content_key, kind))
        self.calls[key] = tuple(outputs)

    def record_version(
        self,
        pre_call_key: bytes,
        semantic_version: bytes,
        content_version: bytes,
        op_name: str,
        support: Sequence[tuple[int, bytes]],
        created_at: float,
    ) -> None:
        """Add the version rows of a versioned call: which code it ran (``support``: component
        id, content hash) and under which semantic version its inputs were computed."""
        if content_version not in self._versions:
            self._versions[content_version] = (
                content_version,
                semantic_version,
                op_name,
                created_at,
            )
            for component_id, content_hash in support:
                self._version_support[(content_version, component_id)] = (
                    content_version,
                    component_id,
                    content_hash,
                )
        self._call_versions.add((pre_call_key, semantic_version, content_version))

    def call_recorded(self) -> None:
        """End the recording of one op call (with its structural calls): in a durable session,
        commit it now, in one transaction, so a crash after this returns cannot lose it.

        The caller holds :attr:`lock` across recording and this, so another thread's commit
        never sees half of the call. If the commit fails, the call stays pending (a later
        commit retries it) and the error propagates: the call was not made durable.
        """
        if self.durable:
            self.commit()

    # ------------------------------------------------------------------ commit

    def commit(self) -> int:
        """Write everything pending in one transaction; returns the number of new calls.

        On failure (including KeyboardInterrupt) nothing is written and everything stays
        pending, so a later commit can retry.
        """
        with self.lock:
            return self._commit()

    def _commit(self) -> int:
        if not self.is_dirty:
            return 0
        items = [row for rows in self._items.values() for row in rows]
        batch = WriteBatch(
            ops=list(self._ops.values()),
            values=list(self._values.values()),
            items=items,
            calls=[
                (
                    c.history_key,
                    c.content_key,
                    c.op.name,
                    c.op.version,
                    c.semantic_version,
                    c.content_version,
                    c.started_at,
                    c.duration,
                )
                for c in self.pending_calls.values()
            ],
            edges=self._edges,
            versions=list(self._versions.values()),
            version_support=list(self._version_support.values()),
            call_versions=list(self._call_versions),
        )
        self.backend.write(batch)
        count = len(self.pending_calls)
        self._reset_pending()
        logger.debug("committed %d calls", count)
        return count

    def forget_calls(self, call_keys: Iterable[bytes]) -> int:
        """Remove calls from the cache and from pending writes; returns how many were cached."""
        removed = 0
        for key in call_keys:
            if self.calls.pop(key, None) is not None:
                removed += 1
            call = self.pending_calls.pop(key, None)
            if call is not None:
                self._edges = [edge for edge in self._edges if edge[0] != key]
                if self._pending_by_content.get(call.content_key) == key:
                    del self._pending_by_content[call.content_key]
                for ref in call.outputs.values():
                    self._pending_creators.pop(ref.history_key, None)
        return removed


class _Discard:
    """A write-only file that keeps nothing (to hash a value's bytes without storing them)."""

    def write(self, data: Any) -> int:
        return len(data)

    def flush(self) -> None:
        pass


class _HashingWriter:
    """A write-only file that hashes what passes through it to the real file."""

    def __init__(self, file: BinaryIO | _Discard) -> None:
        self.file = file
        self.hasher = Hasher()

    def write(self, data: Any) -> int:
        self.hasher.update(data)
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()
