"""``Storage``: where op calls are memoized, and the API to query and maintain what is stored.

The facade composes a backend (SQLite file or memory), a blob folder for large values, the
session cache and the engine. See the class docstring for usage.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from mandala._text import format_table
from mandala.backends.blobs import BlobStore, LocalBlobStore
from mandala.backends.fsspec_blobs import open_blob_store
from mandala.backends.integrity import VerificationReport, add_checksums, verify
from mandala.backends.postgres import PostgresBackend, is_postgres_url
from mandala.backends.records import CallRows, StoredCall
from mandala.backends.sql import SqlBackend
from mandala.backends.sqlite import SqliteBackend
from mandala.backends.transfer import CopyReport, copy_calls
from mandala.engine.context import Mode, active_stack, leave_frame, pop_frame, push_frame
from mandala.engine.executor import Engine, iter_refs
from mandala.engine.mutation import check_mutation_policy
from mandala.engine.op import Op
from mandala.engine.session import Session
from mandala.engine.structural import STRUCTURAL_OPS
from mandala.errors import (
    ContextError,
    UncommittedChangesError,
    ValueNotFoundError,
)
from mandala.hashing.digest import from_hex
from mandala.model.calls import Call, LazyCall, OpSpec
from mandala.model.kinds import KIND_ATOM, KIND_POINTER, ref_from_kind
from mandala.model.refs import AtomRef, Ref
from mandala.ui.prompts import ask_about_change
from mandala.versioning.report import (
    code_text,
    diff_text,
    find_content_versions,
    history_text,
    versions_text,
)
from mandala.versioning.versioner import Versioner

if TYPE_CHECKING:
    import numpy as np

    from mandala.frames.frame import ComputationFrame
    from mandala.parallel.batch import Batch

__all__ = ["Storage"]

logger = logging.getLogger("mandala")

_MB = 1024 * 1024
_DEFAULT_BLOB_THRESHOLD_MB = 1.0


def _choose_blob_store(
    blob_store: str | os.PathLike[str] | BlobStore | None,
    overflow_dir: str | os.PathLike[str] | None,
    explicit_overflow_dir: str | os.PathLike[str] | None,
) -> BlobStore | None:
    """The blob store of a Storage: ``blob_store`` if given, else the ``overflow_dir`` folder.

    Raises:
        ValueError: both were given and name different places.
    """
    if blob_store is None:
        return LocalBlobStore(overflow_dir) if overflow_dir is not None else None
    store = open_blob_store(blob_store)
    if explicit_overflow_dir is not None:
        folder = os.path.abspath(os.fspath(explicit_overflow_dir))
        if not (isinstance(store, LocalBlobStore) and os.path.abspath(store.root) == folder):
            raise ValueError(
                f"Storage got overflow_dir={os.fspath(explicit_overflow_dir)!r} and "
                f"blob_store={blob_store!r}, which differ; pass only blob_store (overflow_dir is "
                "the older spelling of a local blob_store)"
            )
    return store


class CacheView:
    """One of the original's per-table caches (``storage.atoms``, ``.shapes``, ``.ops``,
    ``.calls``, ``.sources``), for code written against it.

    The original kept one in-memory cache per table; this storage keeps one cache of calls and
    values, so clearing any view clears that cache, with the original's guard: it refuses
    (``ValueError``) while there are uncommitted calls, unless ``allow_uncommitted=True``.
    """

    def __init__(self, storage: Storage, table: str) -> None:
        self._storage = storage
        self._table = table

    def clear(self, allow_uncommitted: bool = False, allow_uncommited: bool | None = None) -> None:
        """Forget cached items (``allow_uncommited``: the original's spelling, accepted).

        Raises:
            UncommittedChangesError: a ``ValueError``; there are uncommitted calls.
        """
        allowed = allow_uncommitted if allow_uncommited is None else allow_uncommited
        self._storage.clear_cache(allow_uncommitted=allowed)

    def __repr__(self) -> str:
        return f"<cache of {self._table!r} of {self._storage!r}>"


class Storage:
    """A store of memoized op calls. Use it as a context: ``with storage: results = f(x)``.

    Inside ``with storage:`` every ``@op`` call is looked up by its inputs and computed only if
    it was never computed before; its inputs, outputs and metadata are saved when the outermost
    block exits (or at :meth:`commit`). Results come back as lazy refs; :meth:`unwrap` gives
    their values.

    Args:
        db_path: ``":memory:"`` (default; gone when the object is), a SQLite file path (created
            if missing), or a PostgreSQL URL ``"postgresql://user@host:port/dbname"`` for a store
            shared by a team (needs ``pip install 'pymandala[postgres]'``).
        overflow_dir: folder for values of ``overflow_threshold_MB`` and more. For a file store it
            defaults to ``<db_path>.blobs``; in-memory and PostgreSQL stores keep every value in
            the database unless a folder is given.
        overflow_threshold_MB: size from which a value is written to its own file (default 1 MB;
            large arrays are then written and read without extra copies); 0 puts every value
            in the blob store.
        deps_path: turns on code versioning: ``"__main__"`` (the functions of the running
            script or notebook), or the folder (or module file) of your project's code. Every
            call then records the ``@track``-ed functions it ran and the globals they read, and
            is reused only while they are unchanged (or changed compatibly). See
            ``docs/versioning.md``.
        tracer_impl: how calls are traced: ``DecTracer`` (default: ``@track`` decorators and
            global lookups) or ``SysTracer`` (``sys.setprofile``: every project function that
            runs, no ``@track`` needed, globals not seen); ``"dec"``/``"sys"`` also work.
        track_globals: record the global variables read by versioned code (default True).
        skip_unhashable_globals, skip_globals_silently: a global whose value cannot be hashed
            is skipped with a warning (default), silently, or (False) is an error.
        skip_missing_deps, skip_missing_silently: a dependency of stored calls that no longer
            exists is skipped with a warning (default), silently, or (False) is an error.
        strict_tracing, deps_package: the original's; accepted for compatibility, without
            effect (giving them warns with a ``DeprecationWarning``).
        on_input_mutation: what a call whose op changed one of its inputs in place does:
            ``"warn"`` (default: an ``InputMutationWarning``; the call is stored for the inputs
            as passed), ``"error"`` (``InputMutationError``, nothing recorded) or ``"ignore"``
            (no check after the body; the stored inputs are still those passed). See
            ``mandala/engine/mutation.py``.
        on_change: what entering a context does when versioned code changed: ``"ask"``
            (default: show the diff and ask y/n/a through ``input()``), ``"new_version"``
            (every change invalidates the calls that used the code), ``"compatible"`` (keep
            them), ``"error"`` (raise, listing the changes; for CI and workers).
        allow_pickle: False to never unpickle (pickle can run arbitrary code): loading a value
            stored with pickle raises ``SerializationError``, and so does storing a value that
            has no pickle-free format. Builtins, numpy arrays and simple pandas objects need no
            pickle. Use it to read a store written by someone you do not trust.
        durable: True commits every op call the moment it completes (one transaction per call,
            its structural calls included), so a crash or ``kill -9`` loses at most the call in
            flight instead of everything since the last commit. None (default) means False for
            every backend: a transaction per call costs about 110 µs per call on a SQLite file
            (3.8x a trivial fresh call) and about 1.1 ms on PostgreSQL over loopback (8x), see
            ``python3 -m bench --only durability``. Turn it on for ops that take milliseconds
            or more, or whose results are expensive to lose.
        blob_store: where values of ``overflow_threshold_MB`` and more go: a local folder (the
            same as ``overflow_dir``), a ``file://`` URL, any fsspec URL such as
            ``"s3://bucket/prefix"`` or ``"gs://bucket/prefix"`` (needs
            ``pip install 'pymandala[s3]'``; credentials and endpoint come from the usual
            environment, e.g. ``AWS_ENDPOINT_URL``), or a store object such as
            ``FsspecBlobStore(url, endpoint_url=...)``. Blobs are content-addressed, uploaded
            atomically and checked against their checksum when read. Given with a different
            ``overflow_dir``, it is an error.

    Example:
        >>> from mandala.imports import Storage, op
        >>> @op
        ... def inc(x):
        ...     return x + 1
        >>> storage = Storage()
        >>> with storage:
        ...     y = inc(41)
        >>> storage.unwrap(y)
        42
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str] = ":memory:",
        overflow_dir: str | os.PathLike[str] | None = None,
        overflow_threshold_MB: float | None = None,  # the original's (mixed-case) name
        deps_path: str | os.PathLike[str] | None = None,
        tracer_impl: Any = None,
        strict_tracing: bool = False,
        skip_unhashable_globals: bool = True,
        skip_globals_silently: bool = False,
        skip_missing_deps: bool = True,
        skip_missing_silently: bool = False,
        deps_package: str | None = None,
        track_globals: bool = True,
        allow_pickle: bool = True,
        durable: bool | None = None,
        blob_store: str | os.PathLike[str] | BlobStore | None = None,
        on_change: str = "ask",
        on_input_mutation: str = "warn",
    ) -> None:
        for name, given in (
            ("deps_package", deps_package is not None),
            ("strict_tracing", strict_tracing),
        ):
            if given:
                warnings.warn(
                    f"Storage({name}=...) has no effect; remove the argument",
                    DeprecationWarning,
                    stacklevel=2,
                )
        location = str(db_path)
        explicit_overflow_dir = overflow_dir
        self.backend: SqlBackend
        if is_postgres_url(location):
            self.backend = PostgresBackend(location)
            self.db_path = self.backend.path  # without the password
        else:
            self.backend = SqliteBackend(location)
            self.db_path = location
            if overflow_dir is None and not self.backend.is_memory:
                overflow_dir = location + ".blobs"
        threshold_mb = (
            _DEFAULT_BLOB_THRESHOLD_MB if overflow_threshold_MB is None else overflow_threshold_MB
        )
        if threshold_mb < 0:
            raise ValueError(f"overflow_threshold_MB must be >= 0, got {overflow_threshold_MB}")
        blobs = _choose_blob_store(blob_store, overflow_dir, explicit_overflow_dir)
        self.overflow_dir = str(blobs.root) if isinstance(blobs, LocalBlobStore) else None
        self.session = Session(
            self.backend,
            blobs,
            int(threshold_mb * _MB),
            allow_pickle=allow_pickle,
            durable=bool(durable),
        )
        self._engine = Engine(self.session)
        self._engine.on_input_mutation = check_mutation_policy(on_input_mutation)
        self._versioner: Versioner | None = None
        if deps_path is not None:
            self._versioner = Versioner(
                self.backend,
                deps_path,
                policy=on_change,
                prompt=ask_about_change,
                tracer_impl=tracer_impl,
                track_globals=track_globals,
                skip_unhashable_globals=skip_unhashable_globals,
                skip_globals_silently=skip_globals_silently,
                skip_missing_deps=skip_missing_deps,
                skip_missing_silently=skip_missing_silently,
                strict_tracing=strict_tracing,
            )
            self._engine.versioning = self._versioner
        self._frame_source: _FrameSource | None = None
        self._op_specs: dict[tuple[str, int], OpSpec] = {
            (spec.name, spec.version): spec for spec in STRUCTURAL_OPS.values()
        }

    # ================================================================== contexts

    def __enter__(self) -> Storage:
        if self._versioner is not None and not any(
            frame.engine is self._engine for frame in active_stack()
        ):
            # Before the context is active: if the user aborts (or the change policy raises),
            # no context is left behind.
            self._versioner.sync()
        push_frame(self._engine, Mode.RUN)
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        try:
            remaining = leave_frame(self._engine)
        except RuntimeError as error:
            raise ContextError(
                "Storage.__exit__ does not match the innermost `with storage:` block"
            ) from error
        if not any(frame.engine is self._engine for frame in remaining):
            # The outermost block of this storage commits, even when the block raised, so the
            # calls that completed before the error are kept and a rerun resumes from there.
            self.commit()

    def __call__(self, mode: str = "run") -> _ModeContext:
        """``with storage(mode="noop"):`` runs ops as plain functions; ``"run"`` memoizes."""
        try:
            parsed = Mode(mode)
        except ValueError:
            raise ValueError(f"mode must be 'run' or 'noop', got {mode!r}") from None
        if parsed is not Mode.RUN and parsed is not Mode.NOOP:
            raise ValueError(f"mode must be 'run' or 'noop', got {mode!r}")
        return _ModeContext(self, parsed)

    def in_context(self) -> bool:
        """Whether any storage context is active in the running code."""
        return bool(active_stack())

    def allow_new_calls(self, allow: bool) -> _AllowNewCalls:
        """Forbid (``False``) or allow computing calls that are not stored yet.

        Takes effect at once; also usable as ``with storage.allow_new_calls(False): ...`` to
        restore the previous setting afterwards. A missing call raises
        ``NewCallsNotAllowedError`` (a ``RuntimeError``).
        """
        previous = self._engine.allow_new_calls
        self._engine.allow_new_calls = bool(allow)
        return _AllowNewCalls(self, previous)

    # ================================================================== calls

    def call(
        self,
        op: Op,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        config: Any = None,
    ) -> Any:
        """Call ``op`` under this storage (what ``op(...)`` does inside ``with storage:``).

        ``config``: the original's; accepted for compatibility, without effect (giving it
        warns with a ``DeprecationWarning``)."""
        if config is not None:
            warnings.warn(
                "Storage.call(..., config=...) has no effect; remove the argument",
                DeprecationWarning,
                stacklevel=2,
            )
        return self._engine.call(op, tuple(args), dict(kwargs))

    def parallel(
        self,
        executor: Any = None,
        *,
        progress: bool | None = None,
        max_workers: int | None = None,
        lease_s: float = 60.0,
    ) -> Batch:
        """A block whose op calls are computed in parallel when it ends.

        Inside ``with storage.parallel(client) as batch:`` each op call is looked up at once:
        stored calls return their refs, the others return pending refs that can be passed to
        further op calls (building a graph); equal calls run once. When the block ends the
        missing calls run on ``executor``, each as soon as its inputs are computed, and their
        results are saved as they finish; the pending refs then are ordinary refs. Using a
        pending ref's value inside the block raises ``PendingResultError``.

        Args:
            executor: a ``dask.distributed.Client`` (calls that take pending refs are submitted
                with the upstream futures, so Dask tracks the dependencies); the ``ray`` module
                itself, once ``ray.init()`` connected it (a local instance, or a cluster:
                ``ray.init("ray://head:10001")``; calls are Ray tasks, and those that take
                pending refs get the upstream ``ObjectRef``s, so Ray tracks the dependencies);
                any ``concurrent.futures.Executor``; or None for a ``ProcessPoolExecutor`` of
                ``max_workers`` processes (default: one per CPU) created for the block.
                Ops must be importable by the workers (defined at module level), or picklable
                by value with cloudpickle.
            progress: show counts of pending / running / done / failed / from-store calls on
                stderr; None (default) shows them only when stderr is a terminal.
            max_workers: size of the default process pool.
            lease_s: how long a claim on a call lasts without renewal. Before computing a call
                the block claims it in the store, so another process running the same calls on
                a shared store (SQLite file, PostgreSQL) waits for the result instead of
                computing it too, and takes the call over if this process dies (once the lease
                expires). Leases are renewed every third of ``lease_s``.

        Raises:
            ParallelCallError: at the end of the block, if calls failed (with the first
                failure's worker traceback); every other result was saved, and running the
                block again computes only what is missing.

        Example:
            >>> with storage.parallel(client) as batch:  # doctest: +SKIP
            ...     models = [train(x, seed) for seed in range(10)]
            ...     scores = [evaluate(m) for m in models]
            >>> storage.unwrap(scores)  # doctest: +SKIP

            On Ray (``pip install 'pymandala[ray]'``):

            >>> import ray  # doctest: +SKIP
            >>> ray.init()  # or ray.init("ray://head:10001")  # doctest: +SKIP
            >>> with storage.parallel(ray):  # doctest: +SKIP
            ...     scores = [evaluate(train(x, seed)) for seed in range(10)]
        """
        from mandala.parallel.batch import Batch

        return Batch(
            self,
            executor,
            engine=self._engine,
            progress=progress,
            max_workers=max_workers,
            lease_s=lease_s,
        )

    def map(
        self,
        op: Op,
        *iterables: Iterable[Any],
        executor: Any = None,
        progress: bool | None = None,
        max_workers: int | None = None,
    ) -> list[Any]:
        """``[op(*args) for args in zip(*iterables)]`` computed in parallel (see
        :meth:`parallel`); returns the refs of the results, in order."""
        with self.parallel(executor, progress=progress, max_workers=max_workers) as batch:
            results = batch.map(op, *iterables)
        return results

    def commit(self) -> None:
        """Write every pending call, ref and value to the store in one transaction."""
        count = self.session.commit()
        if count:
            logger.debug("Committed %d calls", count)

    # ================================================================== values

    def unwrap(self, obj: Any, cache: bool = True) -> Any:
        """Values of the refs in ``obj``, recursing through lists, tuples, dicts and sets.

        Anything that is not a ref is returned as it is. With ``cache=True`` loaded values are
        kept in the refs, so unwrapping them again costs nothing.
        """
        if not cache:
            refs = list(iter_refs(obj))
            obj = _replace_refs(obj, {id(r): _deep_copy(r) for r in refs})
        return self._engine.unwrap(obj, cache)

    def attach(self, obj: Any, inplace: bool = False) -> Any:
        """Load the values of the refs in ``obj``.

        Returns copies holding their values (a ``ListRef`` stays a ``ListRef``), or, with
        ``inplace=True``, fills the given refs and returns None.
        """
        refs = list(iter_refs(obj))
        if not inplace:
            copies = {id(r): _deep_copy(r) for r in refs}
            obj = _replace_refs(obj, copies)
            refs = list(copies.values())
        self._engine.attach(refs)
        return None if inplace else obj

    def load_ref(self, hid: str, in_memory: bool = True) -> Ref:
        """The ref with history id ``hid``; with its value when ``in_memory`` (the default)."""
        key = from_hex(hid, "history id")
        found = self.backend.values.load_refs([key])
        if key not in found:
            pending = self.session.pending_ref(key)
            if pending is None:
                raise ValueNotFoundError(f"no ref with history id {hid} in this storage")
            found[key] = pending
        content_key, kind = found[key]
        ref = ref_from_kind(KIND_ATOM if kind == KIND_POINTER else kind, content_key, key)
        if in_memory:
            self._engine.attach([ref])
        elif not isinstance(ref, AtomRef):
            self._engine.load_shapes([ref])
        return ref

    # ================================================================== provenance

    def _spec(self, name: str, version: int) -> OpSpec:
        spec = self._op_specs.get((name, version))
        if spec is None:
            for row in self.backend.calls.ops():
                self._op_specs[(row.name, row.version)] = row.to_spec()
            spec = self._op_specs.get((name, version)) or OpSpec(name, version)
        return spec

    def _to_call(self, stored: StoredCall | Call) -> Call:
        if isinstance(stored, Call):
            return stored

        source = _StoredCallRefs(stored, self._engine.load_shapes)
        return LazyCall(
            self._spec(stored.op_name, stored.op_version),
            stored.history_key,
            source,
            0,
            source.call_details(0),
        )

    def mget_call(self, hids: Iterable[str], in_memory: bool = False) -> list[Call]:
        """Calls by history id, in the given order; with loaded values when ``in_memory``.

        Raises:
            ValueNotFoundError: some id is not a stored call.
        """
        keys = [from_hex(h, "call history id") for h in hids]
        calls = [self._to_call(c) for c in self.session.load_calls(keys)]
        if len(calls) != len(keys):
            found = {c.history_key for c in calls}
            missing = [k.hex() for k in keys if k not in found]
            raise ValueNotFoundError(f"no call with history id {missing[0]} in this storage")
        if in_memory:
            self._engine.attach(r for c in calls for r in (*c.inputs.values(), *c.outputs.values()))
        return calls

    def get_call(self, hid: str, lazy: bool = True) -> Call:
        """The call with history id ``hid``; values loaded unless ``lazy``."""
        return self.mget_call([hid], in_memory=not lazy)[0]

    def exists_call(self, hid: str) -> bool:
        """Whether a call with this history id is stored (or pending)."""
        return self.session.has_call(from_hex(hid, "call history id"))

    def get_creators(self, ref_hids: Iterable[str]) -> list[Call]:
        """The calls that output the given refs (committed or pending)."""
        keys = [from_hex(h, "history id") for h in ref_hids]
        found = self.session.creators(keys)
        call_keys = list(dict.fromkeys(k for key in keys for k in found.get(key, [])))
        return [self._to_call(c) for c in self.session.load_calls(call_keys)]

    def get_consumers(self, ref_hids: Iterable[str]) -> list[Call]:
        """The calls that take the given refs as inputs (committed or pending)."""
        keys = [from_hex(h, "history id") for h in ref_hids]
        found = self.session.consumers(keys)
        call_keys = list(dict.fromkeys(k for key in keys for k in found.get(key, [])))
        return [self._to_call(c) for c in self.session.load_calls(call_keys)]

    def get_ref_creator(self, ref: Ref) -> Call | None:
        """The call that produced ``ref``, or None for a value that entered as a raw input."""
        creators = self.get_creators([ref.hid])
        if len(creators) > 1:
            raise RuntimeError(f"ref {ref.hid} has {len(creators)} creators; the store is corrupt")
        return creators[0] if creators else None

    # ================================================================== deletion and upkeep

    def drop_calls(self, calls_or_hids: Iterable[Call | str], delete_dependents: bool) -> None:
        """Delete calls, and with ``delete_dependents`` every call that used their outputs.

        Pending work is committed first. Refs and values stay until :meth:`cleanup_refs`.
        """
        keys = []
        for item in calls_or_hids:
            if isinstance(item, Call):
                keys.append(item.history_key)
            elif item is None or (isinstance(item, float) and item != item):
                continue  # empty cells of a dataframe column of calls
            else:
                keys.append(from_hex(item, "call history id"))
        self._drop_call_keys(keys, delete_dependents)

    def _drop_call_keys(self, keys: list[bytes], delete_dependents: bool) -> int:
        """Commit, then delete calls by history key (and their dependents); returns how many."""
        self.commit()
        if delete_dependents and keys:
            keys = list(self.backend.calls.dependents(keys))
        deleted = self.backend.calls.delete_calls(keys) if keys else 0
        from_cache = self.session.forget_calls(keys)
        logger.info("Dropped %d calls (and %d from cache).", deleted, from_cache)
        return deleted

    def get_orphans(self) -> set[str]:
        """History ids of stored refs that no call uses."""
        self.commit()
        return {key.hex() for key in self.backend.upkeep.orphan_refs()}

    def get_unreferenced_cids(self) -> set[str]:
        """Content ids of stored values that no ref points to."""
        self.commit()
        return {key.hex() for key in self.backend.upkeep.unreferenced_values()}

    def cleanup_refs(self) -> None:
        """Delete refs no call uses, then values no ref points to (and their blob files)."""
        self.commit()
        orphans = self.backend.upkeep.orphan_refs()
        self.backend.upkeep.delete_refs_and_values(list(orphans), [])
        unreferenced = self.backend.upkeep.unreferenced_values()
        blob_keys = self.backend.upkeep.delete_refs_and_values([], list(unreferenced))
        if self.session.blobs is not None:
            for key in blob_keys:
                self.session.blobs.delete(key)
        logger.info("Cleaning up %d orphaned refs and %d values.", len(orphans), len(unreferenced))

    def vacuum(self) -> None:
        """Reclaim the space of deleted rows (SQLite ``VACUUM``)."""
        self.commit()
        self.backend.vacuum()
        if self.session.blobs is not None:
            self.session.blobs.remove_stale_temporaries()

    def verify(self) -> VerificationReport:
        """Check the store for damage; the report lists what is wrong and how to repair it.

        Checks every stored value against its checksum (and that its blob file exists), every
        call edge for a value row, every call for edges, and lists blob files no row points to.
        Pending work is committed first. Reads the whole store: run it as upkeep, not per call.

        Example:
            >>> report = storage.verify()  # doctest: +SKIP
            >>> report.ok, print(report)  # doctest: +SKIP
        """
        self.commit()
        return verify(self.backend, self.session.blobs)

    def add_checksums(self) -> int:
        """Record checksums for the values stored without one (written before checksums
        existed), from their bytes as they are now; returns how many were added.

        Afterwards :meth:`verify` checks them, and damage from then on is detected. Run it only
        if you trust the bytes as they are (it cannot tell whether they were damaged before).
        """
        self.commit()
        return add_checksums(self.backend, self.session.blobs)

    def copy_to(self, other: Storage, calls: Iterable[Call | str] | None = None) -> CopyReport:
        """Copy calls, with their values, ops and collections, into the storage ``other``.

        Copies every call, or the given calls (or history ids) and everything they depend on:
        the calls that created their inputs, recursively, and the elements of collections.
        Idempotent: calls ``other`` already has are skipped, so copying twice adds nothing and
        an interrupted copy can be rerun. Each batch of calls is one transaction of ``other``.
        Works between any two backends (e.g. a laptop's SQLite file and a team's PostgreSQL).
        Afterwards ``other`` answers the copied calls as memo hits.

        Raises:
            CorruptValueError: a value to copy is damaged here (see :meth:`verify`).
            ValueNotFoundError: a given history id is not a stored call.
            UnsafePickleError: this storage was opened with ``allow_pickle=False`` (its values
                are not trusted) and values to copy are pickled: nothing is copied. Open it
                with ``allow_pickle=True`` to copy them anyway.
        """
        self.commit()
        other.commit()
        keys: list[bytes] | None = None
        if calls is not None:
            keys = [
                item.history_key if isinstance(item, Call) else from_hex(item, "call history id")
                for item in calls
            ]
            missing = set(keys) - self.backend.calls.has_calls(keys)
            if missing:
                raise ValueNotFoundError(
                    f"no call with history id {sorted(missing)[0].hex()} in this storage"
                )
        return copy_calls(
            self.backend,
            self.session.blobs,
            other.backend,
            other.session.blobs,
            keys,
            allow_pickle=self.session.allow_pickle,
        )

    def preload(self, lazy: bool = True) -> None:
        """Load every stored call into the cache (and every value too, unless ``lazy``)."""
        keys = self.backend.calls.all_call_keys()
        for stored in self.backend.calls.load_calls(keys):
            self.session.calls[stored.history_key] = tuple(
                (o.name, o.history_key, o.content_key, o.kind) for o in stored.outputs
            )
        if not lazy:
            self._engine.attach(
                ref_from_kind(o.kind, o.content_key, o.history_key)
                for stored in self.backend.calls.load_calls(keys)
                for o in (*stored.inputs, *stored.outputs)
                if o.kind != KIND_POINTER
            )

    @property
    def atoms(self) -> CacheView:
        """The original's cache of values: ``storage.atoms.clear()`` clears the cache."""
        return CacheView(self, "atoms")

    @property
    def shapes(self) -> CacheView:
        """The original's cache of collection shapes (see :attr:`atoms`)."""
        return CacheView(self, "shapes")

    @property
    def ops(self) -> CacheView:
        """The original's cache of ops (see :attr:`atoms`)."""
        return CacheView(self, "ops")

    @property
    def calls(self) -> CacheView:
        """The original's cache of calls (see :attr:`atoms`)."""
        return CacheView(self, "calls")

    @property
    def sources(self) -> CacheView:
        """The original's cache of code sources (see :attr:`atoms`)."""
        return CacheView(self, "sources")

    def clear_cache(self, allow_uncommitted: bool = False) -> None:
        """Forget cached calls; refuses while there are uncommitted changes unless allowed."""
        if self.session.is_dirty and not allow_uncommitted:
            raise UncommittedChangesError(
                "Cannot clear cache with uncommitted changes; call `commit()` first, or use "
                "`allow_uncommitted=True` (which discards them)"
            )
        self.session.clear()

    def cache_stats(self) -> dict[str, dict[str, int]]:
        """Counts of cached, pending (uncommitted) and stored items."""
        counts = self.backend.upkeep.counts()
        pending = self.session.pending_counts()
        return {
            "calls": {
                "cached": len(self.session.calls),
                "pending": pending["calls"],
                "stored": counts.calls,
            },
            "refs": {"cached": 0, "pending": pending["refs"], "stored": counts.refs},
            "values": {"cached": 0, "pending": pending["values"], "stored": counts.values},
            "ops": {"cached": len(self._op_specs), "pending": pending["ops"], "stored": counts.ops},
        }

    def cache_info(self) -> None:
        """Print a table of cached, pending and stored counts (see :meth:`cache_stats`)."""
        stats = self.cache_stats()
        rows = [[name, s["cached"], s["pending"], s["stored"]] for name, s in stats.items()]
        print(format_table(["kind", "cached", "pending", "stored"], rows))  # noqa: T201 - its job

    def conn(self) -> Any:
        """The SQLite connection behind this storage (for ad-hoc reading)."""
        return self.backend.connection()

    def close(self) -> None:
        """Commit and release the database connection."""
        self.commit()
        self.backend.close()

    # ================================================================== computation frames

    def cf(self, source: Any) -> ComputationFrame:
        """A :class:`ComputationFrame` of stored calls.

        ``source`` is an op (all its calls), a ref, an iterable of refs or of history ids (one
        variable ``v``), or a dict of variable names to refs or iterables of refs. Work still
        pending in an open block is committed first, so the frame sees it.

        Raises:
            ValueError: ``source`` is none of these.
            TypeError: ``source`` is not iterable (e.g. a number).
        """
        # imported here: frames need pandas, which plain memoization never loads
        from mandala.frames.frame import ComputationFrame

        self.commit()
        if self._frame_source is None:  # one per storage: frames of one storage can be combined
            self._frame_source = _FrameSource(self)
        frame_source = self._frame_source
        if isinstance(source, Op):
            return ComputationFrame.from_op(frame_source, source.name)
        if isinstance(source, Ref):
            return ComputationFrame.from_vars(frame_source, {"v": [source]})
        if isinstance(source, dict):
            variables: dict[str, list[Ref]] = {
                name: [value] if isinstance(value, Ref) else list(value)
                for name, value in source.items()
            }
            for name, refs in variables.items():
                if not all(isinstance(r, Ref) for r in refs):
                    raise ValueError(f"Invalid input to `cf`: variable {name!r} must hold Refs")
            return ComputationFrame.from_vars(frame_source, variables)
        items = list(source)  # a non-iterable raises TypeError, as in the original
        if all(isinstance(item, Ref) for item in items):
            return ComputationFrame.from_vars(frame_source, {"v": items})
        if all(isinstance(item, str) for item in items):
            return ComputationFrame.from_vars(
                frame_source, {"v": [self.load_ref(h, in_memory=False) for h in items]}
            )
        raise ValueError("Invalid input to `cf`: pass an op, a Ref, Refs, history ids or a dict")

    # ================================================================== code versioning

    @property
    def versioned(self) -> bool:
        """Whether this storage tracks code versions (created with ``deps_path``)."""
        return self._versioner is not None

    def get_versioner(self) -> Versioner:
        """The code versioner of this storage.

        Raises:
            ValueError: the storage is not versioned.
        """
        if self._versioner is None:
            raise ValueError("This storage is not versioned.")
        return self._versioner

    def sync_code(self) -> list[Any]:
        """Bring the code state up to date now (entering a context does it); returns the
        changes committed."""
        return self.get_versioner().sync()

    def guess_code_state(self) -> dict[str, str | None]:
        """``"module.qualname"`` -> content id of each known dependency in the running code."""
        versioner = self.get_versioner()
        versioner.sync()
        return versioner.current_state()

    def sync_component(self, component: Any, is_semantic_change: bool) -> str:
        """Record the current code of one function as a new version (``is_semantic_change=True``:
        its calls recompute) or as compatible (``False``: they stay valid), without asking.
        Returns the content id of the code."""
        return self.get_versioner().sync_component(component, is_semantic_change)

    def versions(self, f: Any, show_dep_commit_ids: bool = False, plain: bool = False) -> None:
        """Print every stored version of op ``f`` with the code of all its dependencies."""
        versioner = self.get_versioner()
        print(versions_text(versioner, f, plain, show_dep_commit_ids))  # noqa: T201 - its job

    # ARG002: the original's, no effect
    def get_code(self, version_id: str, show: bool = True, meta: bool = False) -> str:  # noqa: ARG002
        """The code of a call version (``call.content_version``, or a semantic version), or of
        one commit of a component (``show=True`` prints it too).

        Raises:
            ValueError: no version has this id.
        """
        text = code_text(self.get_versioner(), version_id)
        if show:
            print(text)  # noqa: T201 - asked for
        return text

    def code(self, version_id: str, meta: bool = False) -> None:
        """Print the code of a version (see :meth:`get_code`)."""
        self.get_code(version_id, show=True, meta=meta)

    def diff(self, id_1: str, id_2: str, context_lines: int = 2) -> None:
        """Print the differences between the code of two versions."""
        text = diff_text(self.get_versioner(), id_1, id_2, context_lines)
        print(text)  # noqa: T201 - its job

    def source_history(
        self,
        f: Any,
        show_commit_ids: bool = False,
        plain: bool = False,  # noqa: ARG002 - the original's, no effect
        compact: bool = False,  # noqa: ARG002 - the original's, no effect
    ) -> None:
        """Print the revisions of ``f``'s own source, the current one marked ``===HEAD===``."""
        print(history_text(self.get_versioner(), f, show_commit_ids))  # noqa: T201 - its job

    def drop_version(self, version_id: str) -> int:
        """Delete every call that ran a version (a semantic or content version id), and the
        calls that used their outputs; the version's rows go too, the code history stays.
        Returns the number of calls deleted.

        Raises:
            ValueError: no version has this id.
        """
        versioner = self.get_versioner()
        versions = find_content_versions(versioner, version_id)
        if not versions:
            raise ValueError(f"version id {version_id} not found")
        self.commit()
        keys = versioner.rows.calls_with_versions(v.hex() for v in versions)
        deleted = self._drop_call_keys(keys, delete_dependents=True)
        versioner.rows.delete_versions(versions)
        versioner.forget_versions(versions)
        logger.info("Dropped %d versions and %d calls.", len(versions), deleted)
        return deleted

    def __repr__(self) -> str:
        # No row counts here: counting a large store scans it (see cache_info for counts).
        pending = self.session.pending_counts()
        return (
            f"Storage(db_path={self.db_path!r}), cache contents: {len(self.session.calls)} calls "
            f"cached, {pending['calls']} uncommitted"
        )


_BULK_VALUES = 5000
"""From this many values, a frame reads them as rows from the backend (see load_values)."""


class _StoredCallRefs:
    """The refs (made when a :class:`LazyCall` first needs them) and fields of one stored call."""

    __slots__ = ("stored", "load_shapes")

    def __init__(self, stored: StoredCall, load_shapes: Callable[[list[Ref]], None]) -> None:
        self.stored = stored
        self.load_shapes = load_shapes

    # ARG002: CallSource's signature
    def call_refs(self, row: int) -> tuple[dict[str, Ref], dict[str, Ref]]:  # noqa: ARG002
        inputs = {
            o.name: ref_from_kind(o.kind, o.content_key, o.history_key) for o in self.stored.inputs
        }
        outputs = {
            o.name: ref_from_kind(o.kind, o.content_key, o.history_key) for o in self.stored.outputs
        }
        # Collections come with their structure (element refs, values still lazy), as in the
        # original: len(list_ref) and list_ref[0] work without unwrapping first.
        collections = [
            r for r in (*inputs.values(), *outputs.values()) if not isinstance(r, AtomRef)
        ]
        if collections:
            self.load_shapes(collections)
        return inputs, outputs

    def call_details(self, row: int) -> tuple[Any, ...]:  # noqa: ARG002 - CallSource's signature
        stored = self.stored
        return (
            stored.content_key,
            stored.semantic_version,
            stored.content_version,
            stored.started_at,
            stored.duration,
        )


class _FrameSource:
    """How computation frames read (and delete from) a storage, set-at-a-time: the
    ``FrameSource`` protocol of ``mandala.frames.source``, kept off the public Storage API."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.backend = storage.backend

    def call_rows_of_op(self, name: str) -> CallRows:
        return self.backend.columns.load_call_rows_of_op(name)

    def call_rows_touching(self, ref_keys: Any, direction: int) -> CallRows:
        return self.backend.columns.load_call_rows_touching(ref_keys, direction)

    def call_details(self, call_ids: list[int]) -> Sequence[list[Any]]:
        return self.backend.columns.load_call_details(call_ids)

    def load_shapes(self, refs: list[Ref]) -> None:
        # SLF001: this module's Storage: the frames' view of its engine
        self.storage._engine.load_shapes(refs)  # noqa: SLF001

    def op_spec(self, name: str, version: int) -> OpSpec:
        return self.storage._spec(name, version)  # noqa: SLF001 - this module's Storage

    def prefetch_values(self, expected: int) -> Any:
        return self.backend.values.prefetch_values(expected) if expected >= _BULK_VALUES else None

    def load_value_array(self, content_keys: np.ndarray, prefetched: Any = None) -> np.ndarray:
        import numpy as np  # here: opening a store does not need numpy

        from mandala.hashing.key_table import key_list

        session = self.storage.session
        if len(content_keys) < _BULK_VALUES:
            keys = key_list(content_keys)
            found = session.load_values(keys)
            return np.fromiter(map(found.__getitem__, keys), dtype=object, count=len(keys))
        # A frame's table loads every value it shows: decode the store's rows directly (each
        # checked and decoded as the session does), without its bookkeeping per key. Keys the
        # store lacks go through the session (uncommitted values, or its error for a missing one).
        values, present = self.backend.values.decode_values(
            content_keys, session.reader, prefetched
        )
        if not present.all():
            missing = np.flatnonzero(~present)
            keys = key_list(content_keys[missing])
            found = session.load_values(keys)
            for position, key in zip(missing.tolist(), keys):
                values[position] = found[key]
        return values

    def to_call(self, stored: StoredCall) -> Call:
        return self.storage._to_call(stored)  # noqa: SLF001 - this module's Storage

    def drop_calls_by_keys(self, call_keys: Any, delete_dependents: bool) -> None:
        self.storage.drop_calls([k.hex() for k in call_keys], delete_dependents=delete_dependents)

    def unwrap(self, obj: Any) -> Any:
        return self.storage.unwrap(obj)


class _ModeContext:
    def __init__(self, storage: Storage, mode: Mode) -> None:
        self.storage = storage
        self.mode = mode
        self._entered_storage = False

    def __enter__(self) -> Storage:
        if self.mode is Mode.RUN:
            self.storage.__enter__()
            self._entered_storage = True
        else:
            self._token = push_frame(self.storage._engine, self.mode)  # noqa: SLF001 - the Storage's own helper, same module
        return self.storage

    def __exit__(self, *exc_info: Any) -> None:
        if self._entered_storage:
            self.storage.__exit__(*exc_info)
        else:
            pop_frame(self._token)


class _AllowNewCalls:
    def __init__(self, storage: Storage, previous: bool) -> None:
        self.storage = storage
        self.previous = previous

    def __enter__(self) -> Storage:
        return self.storage

    def __exit__(self, *exc_info: Any) -> None:
        self.storage._engine.allow_new_calls = self.previous  # noqa: SLF001 - this module's Storage


def _replace_refs(obj: Any, copies: dict[int, Ref]) -> Any:
    if isinstance(obj, Ref):
        return copies[id(obj)]
    cls = type(obj)
    if cls in (list, tuple, set, frozenset):
        return cls(_replace_refs(item, copies) for item in obj)
    if cls is dict:
        return {k: _replace_refs(v, copies) for k, v in obj.items()}
    return obj


def _deep_copy(ref: Ref) -> Ref:
    """A copy of a ref whose element refs (for collections) are copies too."""
    if isinstance(ref, AtomRef) or ref.obj is None:
        return ref.shallow_copy()
    if isinstance(ref.obj, dict):
        return ref.attached({k: _deep_copy(e) for k, e in ref.obj.items()})
    return ref.attached([_deep_copy(e) for e in ref.obj])
