"""The versioner: the code state of a versioned store, and the version of every call.

It keeps, per component (function, class or global), a DAG of commits mapping a content hash to
a *semantic* hash: a breaking change gets a new one, a compatible change keeps its parent's. A
call's version is the set of components it actually used (its *support*); the call is reused
exactly when every component of its support still has the semantic hash it had then.

Entering a versioned context syncs the state with the running code: components whose file did
not change (same mtime and size) are not re-read; changed ones are re-hashed; a content already
in the DAG (reverted code) is checked out silently; a new content is a *change*, decided by the
change policy (ask the user, always new version, always compatible, or raise).
"""

from __future__ import annotations

import ast
import enum
import functools
import json
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from mandala.backends.sql import SqlBackend
from mandala.backends.version_rows import NewCommit, VersionRows
from mandala.engine.declaration import OpDeclaration
from mandala.engine.session import Session
from mandala.engine.versions import ResolvedVersion
from mandala.errors import (
    ChangeAbortedError,
    CodeChangeError,
    MandalaWarning,
    VersioningError,
)
from mandala.hashing import ids
from mandala.versioning.components import (
    MISSING,
    ComponentKey,
    Kind,
    Roots,
    checked_key,
    code_content,
    code_fingerprint,
    global_content,
    is_tracked,
    original_function,
    resolve,
    source_file,
)
from mandala.versioning.tracing import (
    DecTracer,
    SysTracer,
    Trace,
    TracerConfig,
    TraceSummary,
    TracingSpec,
)

__all__ = ["Versioner", "ChangePolicy", "Decision", "CodeChange", "Prompt"]

logger = logging.getLogger(__name__)

_MAX_CACHED_CANDIDATES = 1_000_000
"""Calls whose candidate versions are kept in memory (about 200 bytes each)."""

_RACY_NS = 2_000_000_000
"""A file modified less than this before its signature is taken may change again within the
same mtime tick; its signature is not trusted (it is re-read at the next sync)."""


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _locked(method: _Method) -> _Method:
    """Run a Versioner method under its lock."""

    @functools.wraps(method)
    def run(self: Versioner, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return run  # type: ignore[return-value]


class ChangePolicy(str, enum.Enum):
    """What to do when a context is entered and the code of a dependency changed."""

    ASK = "ask"
    """Show the diff and ask (y: new version, n: compatible, a: abort) through ``input()``."""
    NEW_VERSION = "new_version"
    """Every change is breaking: calls that used the component recompute."""
    COMPATIBLE = "compatible"
    """Every change is compatible: stored calls stay valid."""
    ERROR = "error"
    """Raise :class:`~mandala.errors.CodeChangeError` listing the changes (for CI, workers)."""


class Decision(str, enum.Enum):
    BREAKING = "y"
    COMPATIBLE = "n"
    ABORT = "a"


@dataclass(frozen=True)
class CodeChange:
    """A component whose current content is new to its history.

    Attributes:
        module, qualname, kind: the component.
        old_source: the text of its last checked-out commit.
        new_source: its text now.
        affected_calls: how many stored calls used the component (any of its versions).
        new_dependencies: names the new code uses that the old did not and that resolve to
            tracked code (marking such a change compatible hides later changes of them from
            the calls made before).
    """

    module: str
    qualname: str
    kind: str
    old_source: str
    new_source: str
    affected_calls: int
    new_dependencies: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.module}.{self.qualname}"


Prompt = Callable[[CodeChange], "Decision | str"]


class _Component:
    __slots__ = ("id", "key", "kind", "path", "head", "commits", "current")

    def __init__(
        self, component_id: int, key: ComponentKey, kind: str, path: str | None, head: bytes | None
    ) -> None:
        self.id = component_id
        self.key = key
        self.kind = kind
        self.path = path
        self.head = head
        self.commits: dict[bytes, bytes] = {}  # content hash -> semantic hash
        self.current: bytes | None = head  # content hash of the running code (None: missing)

    @property
    def current_semantic(self) -> bytes | None:
        return None if self.current is None else self.commits.get(self.current)


def _tracer_of(tracer_impl: Any) -> Any:
    if tracer_impl is None or tracer_impl in ("dec", DecTracer):
        return DecTracer
    if tracer_impl in ("sys", SysTracer):
        return SysTracer
    name = getattr(tracer_impl, "__name__", None)
    if name in ("DecTracer", "SysTracer"):
        return DecTracer if name == "DecTracer" else SysTracer
    raise ValueError(
        f"tracer_impl must be DecTracer, SysTracer, 'dec' or 'sys' (from mandala.versioning "
        f"import SysTracer), got {tracer_impl!r}"
    )


class Versioner:
    """Code state and call versions of one versioned Storage (see the module docstring).

    Args:
        backend: the store's backend.
        deps_path: ``"__main__"``, a folder or a module file: the project's code.
        policy: what to do about code changes on entering a context.
        prompt: asks the user about a change (the Storage passes the ui prompt).
        tracer_impl, track_globals, skip_*, strict_tracing: the Storage's tracing options.
    """

    def __init__(
        self,
        backend: SqlBackend,
        deps_path: str | os.PathLike[str],
        policy: ChangePolicy | str = ChangePolicy.ASK,
        prompt: Prompt | None = None,
        tracer_impl: Any = None,
        track_globals: bool = True,
        skip_unhashable_globals: bool = True,
        skip_globals_silently: bool = False,
        skip_missing_deps: bool = True,
        skip_missing_silently: bool = False,
        strict_tracing: bool = False,
    ) -> None:
        self.rows = VersionRows(backend)
        self.roots = Roots(deps_path)
        try:
            self.policy = ChangePolicy(policy)
        except ValueError:
            raise ValueError(
                f"on_change must be one of {[p.value for p in ChangePolicy]}, got {policy!r}"
            ) from None
        self.prompt = prompt
        self.tracer = _tracer_of(tracer_impl)
        self.config = TracerConfig(
            self.roots,
            track_globals=track_globals,
            skip_unhashable_globals=skip_unhashable_globals,
            skip_globals_silently=skip_globals_silently,
            strict=strict_tracing,
        )
        self.skip_missing_deps = skip_missing_deps
        self.skip_missing_silently = skip_missing_silently
        self._check_roots()
        self._generation = -1
        self._components: dict[ComponentKey, _Component] = {}
        self._by_id: dict[int, _Component] = {}
        self._valid: dict[str, bool] = {}  # content version (hex) -> matches the code now
        self._candidates: dict[bytes, list[tuple[str, str]]] = {}
        self._decisions: dict[ComponentKey, bool] = {}
        # One storage may be used from several threads: the state below is read and replaced
        # by syncs, lookups and resolutions, so they take turns (never while an op runs).
        self._lock = threading.RLock()

    def _check_roots(self) -> None:
        wanted = json.dumps(self.roots.describe())
        stored = self.rows.roots()
        if stored is None:
            self.rows.set_roots(wanted)
        elif stored != wanted:
            raise ValueError(
                f"Found existing versioner with roots {json.loads(stored)}, but was asked to use "
                f"{json.loads(wanted)}; open the store with deps_path pointing at "
                f"{json.loads(stored) or '__main__'} (or use a new store for the new roots)"
            )

    # ================================================================== state

    def _load(self) -> None:
        """Read the code state from the store if another process (or this one) changed it."""
        generation = self.rows.generation()
        if generation == self._generation and self._components:
            return
        previous = {key: c.current for key, c in self._components.items()}
        components: dict[ComponentKey, _Component] = {}
        by_id: dict[int, _Component] = {}
        for row in self.rows.load_components():
            key = ComponentKey(row.module, row.qualname)
            component = _Component(row.component_id, key, row.kind, row.path, row.head_content)
            if key in previous:
                component.current = previous[key]
            components[key] = component
            by_id[row.component_id] = component
        for commit in self.rows.load_commits():
            found = by_id.get(commit.component_id)
            if found is not None:
                found.commits[commit.content_hash] = commit.semantic_hash
        self._components, self._by_id = components, by_id
        self._generation = generation
        self._valid.clear()

    def _current_content(
        self,
        component: _Component,
        signatures: dict[str, tuple[int, int]],
        stats: dict[str, tuple[int, int] | None],
    ) -> tuple[bytes | None, str | None, Any]:
        """``(content, text, object)`` of a component in the running code (content None: it no
        longer exists). ``text`` is None when the content was known without reading it."""
        if component.kind == Kind.GLOBAL:
            value = resolve(component.key)
            if value is MISSING:
                return None, None, MISSING
            content, description, _ = global_content(value)
            return content, description, value
        path = component.path
        if path is not None and component.head is not None and component.key.module != "__main__":
            signature = signatures.get(path)
            if signature is not None:
                if path not in stats:
                    stats[path] = _stat(path)
                if signature == stats[path]:
                    return component.head, None, None
        obj = resolve(component.key)
        if obj is MISSING:
            return None, None, MISSING
        try:
            content, source = code_content(obj)
        except (OSError, TypeError):
            return None, None, MISSING
        return content, source, obj

    @_locked
    def sync(self) -> list[CodeChange]:
        """Bring the code state up to date with the running code (on entering a context).

        Returns:
            The changes that were committed (decided by the policy or the user).

        Raises:
            ChangeAbortedError: the user answered "abort"; nothing was written.
            CodeChangeError: the policy is ``"error"`` and some code changed.
            VersioningError: a dependency is missing and ``skip_missing_deps`` is False.
        """
        self._load()
        signatures = self.rows.load_files()
        now = time.time_ns()
        commits: list[NewCommit] = []
        heads: list[tuple[int, bytes]] = []
        changes: list[tuple[_Component, CodeChange, bytes, str]] = []
        missing: list[_Component] = []
        paths: set[str] = set()
        stats: dict[str, tuple[int, int] | None] = {}
        changed_state = False
        for component in self._components.values():
            previous = component.current
            content, text, obj = self._current_content(component, signatures, stats)
            if content != previous:
                changed_state = True
            if component.path is not None:
                paths.add(component.path)
            if content is None:
                component.current = None
                missing.append(component)
                continue
            component.current = content
            if content == component.head:
                continue
            if content in component.commits:  # reverted to known code: check it out, no prompt
                component.head = content
                heads.append((component.id, content))
                continue
            if text is None:  # pragma: no cover - only known contents are skipped unread
                continue
            change = self._describe_change(component, text)
            changes.append((component, change, content, text))
        if missing:
            self._report_missing(missing)
        decided = self._decide([change for _, change, _, _ in changes])
        created = time.time()
        for (component, _, content, text), breaking in zip(changes, decided):
            parent = component.head
            parent_semantic = component.commits.get(parent) if parent is not None else None
            semantic = content if breaking or parent_semantic is None else parent_semantic
            commits.append(
                NewCommit(
                    component.key.module,
                    component.key.qualname,
                    component.kind,
                    component.path,
                    content,
                    semantic,
                    parent,
                    text,
                    created,
                )
            )
        files = []
        stale = []
        for path in paths:
            stat = stats[path] if path in stats else _stat(path)
            if stat is None:
                continue
            if now - stat[0] < _RACY_NS:
                if path in signatures:
                    stale.append(path)
            elif signatures.get(path) != stat:
                files.append((path, *stat))
        if commits or heads or files or stale:
            self.rows.save_state(commits, heads, files, stale)
            for commit in commits:
                component = self._components[ComponentKey(commit.module, commit.qualname)]
                component.commits[commit.content_hash] = commit.semantic_hash
                component.head = commit.content_hash
            self._generation = self.rows.generation()
        self._decisions.clear()
        if changed_state or commits or heads:
            # Which stored versions match the code may have changed; the candidate rows of
            # each call have not (they are only ever added, or dropped with drop_version).
            self._valid.clear()
        return [change for _, change, _, _ in changes]

    def _report_missing(self, missing: Sequence[_Component]) -> None:
        names = ", ".join(f"{c.key.module}.{c.key.qualname}" for c in missing)
        if not self.skip_missing_deps:
            raise VersioningError(
                f"dependencies of stored calls no longer exist in the running code: {names}; "
                "import the modules that define them, or create the storage with "
                "skip_missing_deps=True (calls that used them will not be reused)"
            )
        if not self.skip_missing_silently:
            warnings.warn(
                f"mandala: dependencies of stored calls were not found in the running code: "
                f"{names}; calls that used them will recompute if called",
                MandalaWarning,
                stacklevel=4,
            )

    def _describe_change(self, component: _Component, text: str) -> CodeChange:
        old = ""
        if component.head is not None:
            old = self.rows.commit_sources([(component.id, component.head)]).get(
                (component.id, component.head), ""
            )
        affected = self.rows.versions_using([component.id])
        calls = len(self.rows.calls_with_versions(v.hex() for v in affected)) if affected else 0
        new_deps: tuple[str, ...] = ()
        if component.kind == Kind.CODE:
            new_deps = _new_dependencies(old, text, component.key.module)
        return CodeChange(
            component.key.module,
            component.key.qualname,
            component.kind,
            old,
            text,
            calls,
            new_deps,
        )

    def _decide(self, changes: Sequence[CodeChange]) -> list[bool]:
        """Breaking (True) or compatible (False) for each change, by decision or policy."""
        undecided = [
            c for c in changes if ComponentKey(c.module, c.qualname) not in self._decisions
        ]
        if undecided and self.policy is ChangePolicy.ERROR:
            lines = [
                f"  - {c.name} ({c.kind}): {c.affected_calls} stored call(s) used it"
                for c in undecided
            ]
            raise CodeChangeError(
                "code changed since the store last saw it, and on_change='error':\n"
                + "\n".join(lines)
                + "\nDecide before entering the context with storage.sync_component(f, "
                "is_semantic_change=True/False), or use on_change='new_version'/'compatible'"
            )
        result = []
        for change in changes:
            key = ComponentKey(change.module, change.qualname)
            if key in self._decisions:
                breaking = self._decisions[key]
            elif self.policy is ChangePolicy.NEW_VERSION:
                breaking = True
            elif self.policy is ChangePolicy.COMPATIBLE:
                breaking = False
            else:
                if self.prompt is None:
                    raise CodeChangeError(
                        f"{change.name} changed and there is no way to ask; pass on_change= to "
                        "the Storage or call storage.sync_component(...) first"
                    )
                try:
                    answer = Decision(str(self.prompt(change)))
                except EOFError:
                    raise CodeChangeError(
                        f"{change.name} changed and there is no input to ask about it (no "
                        "terminal?); pass on_change='new_version'/'compatible'/'error' to the "
                        "Storage, or call storage.sync_component(...) before entering"
                    ) from None
                if answer is Decision.ABORT:
                    raise ChangeAbortedError(
                        f"Aborting commit: the change to {change.name} was not recorded and the "
                        "context was not entered"
                    )
                breaking = answer is Decision.BREAKING
            if not breaking and change.new_dependencies:
                warnings.warn(
                    f"mandala: the change to {change.name} was marked compatible but uses "
                    f"{list(change.new_dependencies)}, which calls made with the old code never "
                    "ran; later changes to them will not invalidate those calls. Mark the change "
                    "as breaking, or declare the dependency with @op(deps=[...])",
                    MandalaWarning,
                    stacklevel=4,
                )
            result.append(breaking)
        return result

    @_locked
    def sync_component(self, obj: Any, is_semantic_change: bool) -> str:
        """Commit the current code of one component without asking; returns its content id.

        Called outside a context it is recorded now; the decision also holds for the next
        :meth:`sync` if the code changes again before it.
        """
        key = checked_key(obj, "sync_component")
        target = original_function(obj)
        content, source = code_content(target)
        self._load()
        component = self._components.get(key)
        self._decisions[key] = is_semantic_change
        if component is not None and content in component.commits:
            if component.head != content:
                self.rows.save_state([], [(component.id, content)], [])
                component.head = content
                self._generation = self.rows.generation()
            component.current = content
            return content.hex()
        parent = component.head if component is not None else None
        parent_semantic = component.commits.get(parent) if component and parent else None
        semantic = content if is_semantic_change or parent_semantic is None else parent_semantic
        commit = NewCommit(
            key.module,
            key.qualname,
            Kind.CODE.value,
            source_file(target),
            content,
            semantic,
            parent,
            source,
            time.time(),
        )
        self._write_commits([commit])
        self._valid.clear()
        return content.hex()

    def _write_commits(self, commits: Sequence[NewCommit]) -> None:
        made = self.rows.save_state(commits, [], [])
        for commit in commits:
            key = ComponentKey(commit.module, commit.qualname)
            component = self._components.get(key)
            if component is None:
                component = _Component(made[key], key, commit.kind, commit.path, None)
                self._components[key] = component
                self._by_id[component.id] = component
            component.commits[commit.content_hash] = commit.semantic_hash
            component.head = commit.content_hash
            component.current = commit.content_hash
        self._generation = self.rows.generation()

    # ================================================================== calls (the engine's protocol)

    def candidates(
        self,
        op: OpDeclaration,  # noqa: ARG002 - the engine's VersionResolver protocol passes it
        pre_call_key: bytes,
    ) -> Sequence[tuple[str, str]]:
        # The memo-hit path: reads of dicts that are only ever replaced or cleared, so no lock
        # is needed when everything is known already.
        rows = self._candidates.get(pre_call_key)
        if rows is not None:
            valid = self._valid
            known = [valid.get(row[1]) for row in rows]
            if None not in known:
                return [row for row, ok in zip(rows, known) if ok]
        with self._lock:
            return self._candidates_locked(pre_call_key)

    def _candidates_locked(self, pre_call_key: bytes) -> list[tuple[str, str]]:
        rows = self._candidates.get(pre_call_key)
        if rows is None:
            rows = [
                (semantic.hex(), content.hex())
                for semantic, content in self.rows.call_versions(pre_call_key)
            ]
            if len(self._candidates) >= _MAX_CACHED_CANDIDATES:
                self._candidates.clear()
            self._candidates[pre_call_key] = rows
        return [row for row in rows if self._is_valid(row[1])]

    def _is_valid(self, content_version_hex: str) -> bool:
        known = self._valid.get(content_version_hex)
        if known is not None:
            return known
        content_version = bytes.fromhex(content_version_hex)
        support = self.rows.supports([content_version]).get(content_version, [])
        valid = bool(support)
        for component_id, content in support:
            component = self._by_id.get(component_id)
            if component is None:
                self._load()
                component = self._by_id.get(component_id)
            if component is None:
                valid = False
                break
            current = component.current_semantic
            if current is None or component.commits.get(content) != current:
                valid = False
                break
        self._valid[content_version_hex] = valid
        return valid

    @_locked
    def tracing_spec(self) -> TracingSpec:
        """The tracing options as data, for running versioned calls in worker processes."""
        return TracingSpec(
            "__main__" if self.roots.main_only else str(self.roots.path),
            self.tracer.name,
            self.config.track_globals,
            self.config.skip_unhashable_globals,
            self.config.skip_globals_silently,
        )

    def execute(
        self, op: OpDeclaration, args: Sequence[Any], kwargs: dict[str, Any]
    ) -> tuple[Any, Trace]:
        trace = Trace(self.config, op)
        result = self.tracer.run(trace, op.func, args, kwargs)
        return result, trace

    @_locked
    def resolve(self, op: OpDeclaration, trace: Trace | TraceSummary) -> ResolvedVersion:
        if isinstance(trace, TraceSummary):
            self._check_worker_code(op, trace)
        code: dict[ComponentKey, Any] = dict(trace.code)
        for dep in op.deps:
            target = original_function(dep)
            code.setdefault(ComponentKey(str(target.__module__), str(target.__qualname__)), target)
        new_commits: list[NewCommit] = []
        contents: dict[ComponentKey, bytes] = {}
        for key, obj in code.items():
            component = self._components.get(key)
            if component is not None and component.current is not None:
                contents[key] = component.current
                continue
            target = obj if obj is not None else resolve(key)
            if target is MISSING:
                raise VersioningError(
                    f"op {op.name!r} ran {key.module}.{key.qualname}, which cannot be found by "
                    "its name (a function replaced at runtime?); versioned code must be "
                    "reachable as module attributes"
                )
            try:
                content, source = code_content(target)
            except (OSError, TypeError) as error:
                raise VersioningError(
                    f"op {op.name!r} ran {key.module}.{key.qualname}, whose source is not "
                    f"available ({error}); define it in a file (or a notebook cell)"
                ) from error
            contents[key] = content
            if component is not None and content in component.commits:
                component.current = content  # missing at the last sync, back with known code
            if self._needs_commit(key, content):
                new_commits.append(
                    self._first_commit(key, Kind.CODE, source_file(target), content, source)
                )
        for key, (content, description, _, _) in trace.globals.items():
            component = self._components.get(key)
            if component is not None and component.current is not None:
                if component.current != content:
                    raise VersioningError(
                        f"the global {key.module}.{key.qualname} read by op {op.name!r} changed "
                        "since the storage context was entered (it was reassigned or mutated "
                        "inside the block); versioned ops must see the globals as they were on "
                        "entering. Set globals before `with storage:`, or pass the value as an "
                        "argument"
                    )
                contents[key] = content
                continue
            contents[key] = content
            if self._needs_commit(key, content):
                new_commits.append(self._first_commit(key, Kind.GLOBAL, None, content, description))
        if new_commits:
            if any(c.parent_hash is not None for c in new_commits):
                self._valid.clear()  # a known component got a new content mid-block
            self._write_commits(new_commits)
        for message in trace.warnings:
            warnings.warn(f"mandala: {message}", MandalaWarning, stacklevel=2)
        support: list[tuple[int, bytes]] = []
        content_parts = []
        semantic_parts = []
        for key, content in contents.items():
            component = self._components[key]
            semantic = component.commits[content]
            support.append((component.id, content))
            content_parts.append((key.module, key.qualname, content))
            semantic_parts.append((key.module, key.qualname, semantic))
        return ResolvedVersion(
            ids.version_key("semantic", semantic_parts).hex(),
            ids.version_key("content", content_parts).hex(),
            tuple(support),
        )

    def _check_worker_code(self, op: OpDeclaration, trace: TraceSummary) -> None:
        """Raise if a worker ran other code than this process has loaded (a long-lived worker
        that imported a module before it was edited): its result would be stored under the
        driver's version."""
        stale = []
        for key, fingerprint in trace.fingerprints.items():
            here = resolve(key, import_missing=False)
            if here is MISSING:
                continue
            mine = code_fingerprint(here)
            if mine is not None and mine != fingerprint:
                stale.append(f"{key.module}.{key.qualname}")
        if stale:
            raise VersioningError(
                f"op {op.name!r} ran on a worker whose code differs from this process's for "
                f"{stale}: the worker loaded those modules before they were last changed. "
                "Restart the workers (a new process pool, client.restart() on Dask) so that they "
                "import the current code; the result was not stored"
            )

    def _needs_commit(self, key: ComponentKey, content: bytes) -> bool:
        component = self._components.get(key)
        return component is None or content not in component.commits

    def _first_commit(
        self, key: ComponentKey, kind: Kind, path: str | None, content: bytes, source: str
    ) -> NewCommit:
        component = self._components.get(key)
        parent = component.head if component is not None else None
        if component is not None:
            logger.warning(
                "%s.%s changed inside a versioned block; recorded as a new version",
                key.module,
                key.qualname,
            )
        return NewCommit(
            key.module,
            key.qualname,
            kind.value,
            path,
            content,
            content,
            parent,
            source,
            time.time(),
        )

    @_locked
    def remember(
        self, session: Session, op: OpDeclaration, pre_call_key: bytes, version: ResolvedVersion
    ) -> None:
        semantic = bytes.fromhex(version.semantic_version)
        content = bytes.fromhex(version.content_version)
        session.record_version(
            pre_call_key, semantic, content, op.name, version.support, time.time()
        )
        self._valid[version.content_version] = True
        found = self._candidates.setdefault(pre_call_key, [])
        pair = (version.semantic_version, version.content_version)
        if pair not in found:
            found.insert(0, pair)

    # ================================================================== inspection

    @_locked
    def component_of(self, obj: Any) -> _Component | None:
        target = original_function(obj)
        self._load()
        return self._components.get(ComponentKey(str(target.__module__), str(target.__qualname__)))

    @_locked
    def components(self) -> dict[ComponentKey, _Component]:
        self._load()
        return self._components

    @_locked
    def forget_versions(self, content_versions: Iterable[bytes]) -> None:
        for version in content_versions:
            self._valid.pop(version.hex(), None)
        self._candidates.clear()

    @_locked
    def current_state(self) -> dict[str, str | None]:
        """``"module.qualname"`` -> current content id (None when missing), after a sync."""
        return {
            f"{key.module}.{key.qualname}": (c.current.hex() if c.current else None)
            for key, c in self._components.items()
        }


def _stat(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


def _names_used(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


def _new_dependencies(old: str, new: str, module: str) -> tuple[str, ...]:
    """Names used by ``new`` but not ``old`` that resolve to tracked code in ``module``."""
    if not old:
        return ()
    added = _names_used(new) - _names_used(old)
    if not added:
        return ()
    found = []
    for name in sorted(added):
        value = resolve(ComponentKey(module, name), import_missing=False)
        if value is not MISSING and is_tracked(value):
            found.append(name)
    return tuple(found)
