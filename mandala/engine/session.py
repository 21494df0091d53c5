"""The write-back cache between the engine and a backend.

Calls found or made in this session are remembered compactly (call history key -> its outputs)
so repeated calls are a dict lookup. New rows accumulate in memory and reach the backend in one
transaction at :meth:`Session.commit`. Values are serialized when their call is recorded (so a
value mutated afterwards cannot change what was stored, and an unserializable value is reported
at the call that made it); large values go straight to content-addressed blob files, and only
their row waits for the commit.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from collections.abc import Iterable, Sequence
from typing import Any, BinaryIO, Protocol

from mandala.backends.blobs import BlobStore
from mandala.backends.records import (
    DIRECTION_IN,
    DIRECTION_OUT,
    ShapeItem,
    StoredCall,
    StoredOutput,
    StoredValue,
    WriteBatch,
)
from mandala.errors import CorruptValueError, SerializationError, ValueNotFoundError
from mandala.hashing import serialization
from mandala.hashing.digest import Hasher, digest, digest_many
from mandala.model.calls import Call, OpSpec
from mandala.model.kinds import ref_kind
from mandala.model.refs import Ref

__all__ = ["Session", "SessionBackend", "CompactOutputs"]

logger = logging.getLogger(__name__)

CompactOutputs = tuple[tuple[str, bytes, bytes, int], ...]
"""A call's outputs as ``(name, history_key, content_key, kind)`` tuples: small in memory."""


class SessionBackend(Protocol):
    """What a session reads and writes of its backend (``mandala.backends.sql.SqlBackend`` and
    its subclasses implement it)."""

    def find_outputs(self, call_key: bytes) -> tuple[StoredOutput, ...] | None: ...

    def find_call(
        self, history_key: bytes, content_key: bytes
    ) -> tuple[tuple[StoredOutput, ...] | None, bytes | None]: ...

    def find_call_by_content(self, content_key: bytes) -> bytes | None: ...

    def has_calls(self, call_keys: Sequence[bytes]) -> set[bytes]: ...

    def load_calls(self, call_keys: Sequence[bytes]) -> list[StoredCall]: ...

    def creators(self, ref_keys: Sequence[bytes]) -> dict[bytes, list[bytes]]: ...

    def consumers(self, ref_keys: Sequence[bytes]) -> dict[bytes, list[bytes]]: ...

    def load_shapes(self, collection_keys: Sequence[bytes]) -> dict[bytes, list[ShapeItem]]: ...

    def load_values(self, content_keys: Sequence[bytes]) -> dict[bytes, StoredValue]: ...

    def value_creators(self, content_keys: Sequence[bytes]) -> dict[bytes, list[bytes]]: ...

    def write(self, batch: WriteBatch) -> None: ...


def op_row(spec: OpSpec) -> tuple:
    return (
        spec.name,
        spec.version,
        json.dumps(list(spec.output_names)) if spec.output_names is not None else None,
        json.dumps(spec.nout),
        json.dumps(list(spec.ignore_args)),
        int(spec.is_structural),
    )


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
        backend: SessionBackend,
        blobs: BlobStore | None,
        blob_threshold: int,
        allow_pickle: bool = True,
        durable: bool = False,
    ) -> None:
        self.backend = backend
        self.allow_pickle = allow_pickle
        self.durable = durable
        self.blobs = blobs
        self.blob_threshold = blob_threshold
        self.calls: dict[bytes, CompactOutputs] = {}
        self.lock = threading.RLock()
        """Held while recording a call and while committing, so threads sharing a storage never
        commit half of a call."""
        self._reset_pending()
        self._registered_ops: set[tuple[str, int]] = set()

    def _reset_pending(self) -> None:
        self.pending_calls: dict[bytes, Call] = {}
        self._pending_by_content: dict[bytes, bytes] = {}
        self._pending_creators: dict[bytes, bytes] = {}
        self._values: dict[bytes, tuple] = {}
        self._refs: dict[bytes, tuple] = {}
        self._items: dict[bytes, list[tuple]] = {}
        self._edges: list[tuple] = []
        self._ops: dict[tuple[str, int], tuple] = {}
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
        stored = self.backend.find_outputs(call_key)
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
        outputs, prototype = self.backend.find_call(history_key, content_key)
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
        return self.backend.find_call_by_content(content_key)

    def pending_ref(self, history_key: bytes) -> tuple[bytes, int] | None:
        """``(content_key, kind)`` of a ref recorded in this session but not committed yet."""
        row = self._refs.get(history_key)
        return (row[1], row[2]) if row is not None else None

    def has_call(self, call_key: bytes) -> bool:
        return call_key in self.calls or bool(self.backend.has_calls([call_key]))

    def load_calls(self, call_keys: Sequence[bytes]) -> list[StoredCall | Call]:
        """Calls by history key, pending ones as :class:`Call`, stored ones as records."""
        pending = self.pending_calls
        result: list[StoredCall | Call] = []
        missing = [key for key in call_keys if key not in pending]
        stored = {c.history_key: c for c in self.backend.load_calls(missing)} if missing else {}
        for key in call_keys:
            if key in pending:
                result.append(pending[key])
            elif key in stored:
                result.append(stored[key])
        return result

    def creators(self, ref_keys: Sequence[bytes]) -> dict[bytes, list[bytes]]:
        found = self.backend.creators(ref_keys)
        for key in ref_keys:
            creator = self._pending_creators.get(key)
            if creator is not None and creator not in found.get(key, []):
                found.setdefault(key, []).append(creator)
        return found

    def consumers(self, ref_keys: Sequence[bytes]) -> dict[bytes, list[bytes]]:
        found = self.backend.consumers(ref_keys)
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
            shapes.update(self.backend.load_shapes(missing))
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
                result[key] = self._decode(key, row[1], row[3], row[4], None)
            else:
                missing.append(key)
        if missing:
            stored = self.backend.load_values(missing)
            for key in missing:
                row = stored.get(key)
                if row is None:
                    raise ValueNotFoundError(
                        f"value {key.hex()} is not in this storage (was the ref made by another "
                        "storage, or were its calls dropped and cleaned up?)"
                    )
                result[key] = self._decode(
                    row.content_key, row.format, row.data, row.blob_key, row.checksum
                )
        return result

    def _decode(
        self,
        key: bytes,
        fmt: str,
        data: bytes | None,
        blob_key: str | None,
        checksum: bytes | None,
    ) -> Any:
        """Decode a stored value, first checking its bytes against ``checksum`` (if known).

        Raises:
            CorruptValueError: the bytes do not match the checksum, or the blob file is missing.
        """
        if not self.allow_pickle and serialization.get_format(fmt).uses_pickle:
            raise self._pickle_refused(key, fmt)
        if data is not None:
            if checksum is not None and digest(data) != checksum:
                raise self._corrupt(key, "its stored bytes do not match their checksum")
            return serialization.decode(fmt, data, allow_pickle=self.allow_pickle)
        if blob_key is None or self.blobs is None:
            raise CorruptValueError(
                f"value {key.hex()} is stored in a blob file but this storage has no blob folder;"
                " open it with the blob_store (or overflow_dir) it was written with"
            )
        blobs = self.blobs
        where = blobs.describe(blob_key)
        allow_pickle = self.allow_pickle
        try:
            if checksum is None:  # written before checksums existed
                with blobs.open(blob_key) as file:
                    return serialization.read_from_file(fmt, file, allow_pickle=allow_pickle)
            if blobs.verify_before_read:
                if blobs.digest(blob_key) != checksum:
                    raise self._corrupt(
                        key, f"its blob file {where} does not match its checksum (delete it first)"
                    )
                with blobs.open(blob_key) as file:
                    return serialization.read_from_file(fmt, file, allow_pickle=allow_pickle)
            return self._read_remote_blob(key, fmt, blob_key, checksum, where)
        except FileNotFoundError as error:
            raise self._corrupt(key, f"its blob file {where} is missing") from error

    def _decode_inline_many(
        self,
        fmt: str,
        keys: Sequence[bytes],
        payloads: list[bytes],
        checksums: bytes | list[bytes | None],
    ) -> list[Any]:
        """:meth:`_decode` of many values of one format stored inline (not in blob files), in
        the same order: each checked against its checksum, then all decoded together.

        ``checksums``: one per value (None for a value written before checksums), or, when
        every value has one, their concatenation (checked in one comparison).

        Raises:
            CorruptValueError: a value's bytes do not match its checksum.
        """
        if keys and not self.allow_pickle and serialization.get_format(fmt).uses_pickle:
            raise self._pickle_refused(keys[0], fmt)
        digests = digest_many(payloads)
        if isinstance(checksums, bytes):
            if b"".join(digests) != checksums:
                size = len(checksums) // max(len(payloads), 1)
                self._find_corrupt(
                    keys, digests, [checksums[i * size : (i + 1) * size] for i in range(len(keys))]
                )
        elif digests != checksums:  # one comparison in C; a NULL checksum differs
            self._find_corrupt(keys, digests, checksums)
        return serialization.decode_many(fmt, payloads, allow_pickle=self.allow_pickle)

    def _find_corrupt(
        self, keys: Sequence[bytes], digests: list[bytes], checksums: Sequence[bytes | None]
    ) -> None:
        """Raise for the first value whose digest differs from its (known) checksum.

        Raises:
            CorruptValueError: for that value.
        """
        for position, (found, checksum) in enumerate(zip(digests, checksums)):
            if checksum is not None and found != checksum:
                raise self._corrupt(keys[position], "its stored bytes do not match their checksum")

    @staticmethod
    def _pickle_refused(key: bytes, fmt: str) -> SerializationError:
        return SerializationError(
            f"value {key.hex()} is stored in format {fmt!r}, which needs pickle, and pickle can"
            " run arbitrary code; this storage was opened with allow_pickle=False. Open it"
            " with allow_pickle=True only if you trust whoever wrote the store"
        )

    def _read_remote_blob(
        self, key: bytes, fmt: str, blob_key: str, checksum: bytes, where: str
    ) -> Any:
        """Download a blob once, hashing it on the way, and decode it only if it matches.

        Formats that cannot run code decode from the stream itself (no copy of the bytes); the
        result is dropped if the checksum then fails. Pickle could run code hidden in damaged or
        tampered bytes, so those blobs are first spooled (to memory, then disk) and checked.
        """
        assert self.blobs is not None
        mismatch = f"its blob file {where} does not match its checksum (delete it first)"
        allow_pickle = self.allow_pickle
        with self.blobs.open(blob_key) as file:
            reader = _HashingReader(file)
            if serialization.get_format(fmt).uses_pickle:
                with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
                    while chunk := reader.read(_CHUNK):
                        spool.write(chunk)
                    if reader.hasher.key() != checksum:
                        raise self._corrupt(key, mismatch)
                    spool.seek(0)
                    return serialization.read_from_file(fmt, spool, allow_pickle=allow_pickle)  # type: ignore[arg-type]
            try:
                value = serialization.read_from_file(fmt, reader, allow_pickle=allow_pickle)  # type: ignore[arg-type]
            except SerializationError as error:
                reader.drain()
                if reader.hasher.key() != checksum:
                    raise self._corrupt(key, mismatch) from error
                raise
            reader.drain()
            if reader.hasher.key() != checksum:
                raise self._corrupt(key, mismatch)
            return value

    def _corrupt(self, key: bytes, problem: str) -> CorruptValueError:
        """The error for a damaged stored value, naming the calls that produced it."""
        creators = [k.hex() for k in self.backend.value_creators([key]).get(key, [])]
        if creators:
            fix = (
                f"it was output by the calls {creators}; drop them to recompute it: "
                f"storage.drop_calls({creators!r}, delete_dependents=True), then rerun"
            )
        else:
            fix = "no stored call outputs it (it entered as an input); drop the calls that use it"
        return CorruptValueError(f"value {key.hex()} is corrupt: {problem}; {fix}")

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

        written = self.blobs.write(blob_key, write)
        if written is not None:
            fmt, checksum = written
        else:
            # The file was already there (same content); its row, if stored, keeps its checksum.
            fmt, checksum = serialization.format_for(value, allow_pickle=allow_pickle), None
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


_CHUNK = 1 << 22  # bytes per read when streaming a blob
_SPOOL_IN_MEMORY = 64 << 20  # a pickled blob larger than this is spooled to a temporary file


class _HashingReader:
    """A read-only file that hashes what is read through it from the real file."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.hasher = Hasher()

    def read(self, size: int = -1) -> bytes:
        data = self.file.read(size)
        self.hasher.update(data)
        return data

    def readinto(self, buffer: Any) -> int:
        count = self.file.readinto(buffer)  # type: ignore[attr-defined]
        self.hasher.update(memoryview(buffer)[:count])
        return int(count)

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        """Hash the rest of the file (what the decoder did not read)."""
        while self.read(_CHUNK):
            pass


class _HashingWriter:
    """A write-only file that hashes what passes through it to the real file."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.hasher = Hasher()

    def write(self, data: Any) -> int:
        self.hasher.update(data)
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()
