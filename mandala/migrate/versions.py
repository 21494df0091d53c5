"""Code versions of a versioned original store, re-keyed as this release's versioning rows.

The original's versioner (pickled in ``sources``, read here as inert records) keeps, per
component (function or global, by module and qualname), a DAG of commits with the source text
of each, and per call version the content hashes of the components it used. Our versioning
keys a commit by the hash of its normalized source (``ids.code_content_key``), a breaking commit
is its own semantic key and a compatible one inherits its parent's, and a call's versions are
``ids.version_key`` over its components. All of that can be recomputed from the stored source
texts, so each commit becomes one of ours (same DAG, same breaking/compatible decisions), and
each call gets the versions our versioner would give it, plus its version rows.

Globals are the exception: the original stores only its own hash of a global's value, not the
value, so our key of it cannot be derived; calls whose version reads a global are skipped (and
reported): rerun them on the new store.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable
from typing import Any

from mandala.backends.version_rows import NewCommit, VersionRows
from mandala.engine.session import Session
from mandala.errors import MigrationError
from mandala.hashing import ids
from mandala.migrate.old_store import OldCall, OldStore
from mandala.migrate.report import MigrationReport, Problem
from mandala.model.calls import OpSpec
from mandala.model.refs import Ref
from mandala.storage import Storage
from mandala.versioning.components import Kind

__all__ = ["VersionMap", "version_map", "VersionSkip"]


class VersionSkip(Exception):
    """A call's version cannot be converted (the message says why)."""


def _normalized(source: str) -> str:
    """The original's stored source, normalized as ``components.normalized_source`` does."""
    text = textwrap.dedent(source)
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


class VersionMap:
    """Old content versions -> our ``(semantic_version, content_version, support)``."""

    def __init__(self, old_versioner: Any, storage: Storage, report: MigrationReport) -> None:
        self.report = report
        self.rows = VersionRows(storage.backend)
        # (module, qualname) -> old content hash -> (our content key, our semantic key)
        self.commits: dict[tuple[str, str], dict[str, tuple[bytes, bytes]]] = {}
        self.component_ids: dict[tuple[str, str], int] = {}
        self.unconvertible: dict[tuple[str, str], str] = {}
        self.versions: dict[str, Any] = {}
        self.status: dict[str, str] = {}
        for by_version in (old_versioner.versions or {}).values():
            for content_version, version in (by_version or {}).items():
                self.versions[content_version] = version
        self._write_commits(old_versioner.component_dags or {})

    def _write_commits(self, dags: dict[Any, Any]) -> None:
        new: list[NewCommit] = []
        now = time.time()
        for key, dag in sorted(dags.items()):
            module, qualname = str(key[0]), str(key[1])
            commits = dag.commits or {}
            ours: dict[str, bytes] = {}
            for old_hash, commit in commits.items():
                content = _commit_source(commit)
                if not isinstance(content, str):
                    self.unconvertible[(module, qualname)] = (
                        f"{module}.{qualname} is a global variable, whose value the original "
                        "store does not keep (only its own hash of it)"
                    )
                    break
                ours[old_hash] = ids.code_content_key(_normalized(content))
            if (module, qualname) in self.unconvertible:
                continue
            mapping: dict[str, tuple[bytes, bytes]] = {}
            for old_hash, commit in commits.items():
                semantic_of = commit.semantic_hash or old_hash
                mapping[old_hash] = (ours[old_hash], ours.get(semantic_of, ours[old_hash]))
            self.commits[(module, qualname)] = mapping
            # parents first, the head last (writing a commit moves the head to it)
            order = _topological(commits, dag.head)
            for old_hash in order:
                commit = commits[old_hash]
                parents = commit.parents or []
                parent = ours.get(parents[0]) if parents else None
                new.append(
                    NewCommit(
                        module,
                        qualname,
                        Kind.CODE.value,
                        None,
                        mapping[old_hash][0],
                        mapping[old_hash][1],
                        parent,
                        _normalized(_commit_source(commit)),
                        now,
                    )
                )
        if new:
            self.component_ids = self.rows.save_state(new, [], [])
            heads = [
                (self.component_ids[key], self.commits[key][str(dag.head)][0])
                for key, dag in ((tuple(map(str, k)), d) for k, d in dags.items())
                if key in self.component_ids and str(dag.head) in self.commits.get(key, {})
            ]
            self.rows.save_state([], heads, [])
        for key, reason in self.unconvertible.items():
            self.report.problems.append(Problem("version", f"{key[0]}.{key[1]}", None, reason))

    # ------------------------------------------------------------------ per call

    def _convert(self, content_version: str) -> tuple[str, str, tuple[tuple[int, bytes], ...]]:
        version = self.versions.get(content_version)
        if version is None:
            raise VersionSkip(
                f"its code version {content_version} is not in the original's versioner"
            )
        content_parts = []
        semantic_parts = []
        support = []
        # SLF001: a field of the original library's pickled object
        for key, contents in sorted((version._content_expansion or {}).items()):  # noqa: SLF001
            module, qualname = str(key[0]), str(key[1])
            if (module, qualname) in self.unconvertible:
                raise VersionSkip(self.unconvertible[(module, qualname)])
            commits = self.commits.get((module, qualname))
            found = [commits[c] for c in sorted(contents)] if commits else []
            if len(found) != 1 or (module, qualname) not in self.component_ids:
                raise VersionSkip(
                    f"its code version {content_version} uses {module}.{qualname} in a way "
                    "that cannot be converted"
                )
            content, semantic = found[0]
            content_parts.append((module, qualname, content))
            semantic_parts.append((module, qualname, semantic))
            support.append((self.component_ids[(module, qualname)], content))
        return (
            ids.version_key("semantic", semantic_parts).hex(),
            ids.version_key("content", content_parts).hex(),
            tuple(support),
        )

    def call_version(self, call: OldCall) -> tuple[str | None, str | None]:
        """Our ``(semantic_version, content_version)`` of an old call.

        Raises:
            VersionSkip: the version cannot be converted.
        """
        if call.content_version is None:
            raise VersionSkip("it has no code version, though the store is versioned")
        try:
            semantic, content, _ = self._convert(call.content_version)
        except VersionSkip:
            self.status[call.content_version] = "skipped"
            raise
        self.status.setdefault(call.content_version, "present")
        return semantic, content

    def remember_action(
        self, session: Session, spec: OpSpec, inputs: dict[str, Ref], call: OldCall
    ) -> Callable[[], None]:
        """What records the version rows of the new call (run by the engine as it records)."""
        if call.content_version is None:
            raise VersionSkip("it has no code version, though the store is versioned")
        semantic, content, support = self._convert(call.content_version)
        op_key = ids.op_key(spec.name, spec.version)
        pre_call_key = ids.call_key(op_key, [(n, r.content_key) for n, r in inputs.items()])
        self.status[call.content_version] = "converted"

        def remember() -> None:
            session.record_version(
                pre_call_key,
                bytes.fromhex(semantic),
                bytes.fromhex(content),
                spec.name,
                support,
                time.time(),
            )

        return remember

    def count(self) -> None:
        for status in self.status.values():
            counts = self.report.versions
            setattr(counts, status, getattr(counts, status) + 1)


def _commit_source(commit: Any) -> Any:
    """A commit's content: kept whole in the first commit, as the first element of the diff
    to its parent in the others (the original's diffs of strings are (new, old) pairs); a
    global's content is a (hash, repr) pair instead of a str."""
    # SLF001: a field of the original library's pickled object
    if commit._content is not None:  # noqa: SLF001
        return commit._content  # noqa: SLF001
    diffs = commit.diffs or []
    if diffs and isinstance(diffs[0], tuple) and diffs[0]:
        return diffs[0][0]
    return None


def _topological(commits: dict[str, Any], head: str | None) -> list[str]:
    """Commit hashes, parents before children, the head last."""
    order: list[str] = []
    done: set[str] = set()

    def visit(start: str) -> None:
        stack = [(start, False)]
        while stack:
            node, expanded = stack.pop()
            if node in done or node not in commits:
                continue
            if expanded:
                done.add(node)
                order.append(node)
                continue
            stack.append((node, True))
            stack.extend((p, False) for p in commits[node].parents or [])

    for node in sorted(h for h in commits if h != head):
        visit(node)
    if head is not None:
        visit(head)
    return order


def version_map(old: OldStore, storage: Storage, report: MigrationReport) -> VersionMap | None:
    """The version map of a versioned original store, or None for an unversioned one.

    Raises:
        MigrationError: the store and the target disagree on versioning.
    """
    versioner = old.versioner()
    if versioner is None:
        if storage.versioned:
            raise MigrationError(
                f"{str(old.path)!r} is not versioned, but the target storage is (deps_path); "
                "migrate into a storage opened without deps_path"
            )
        return None
    if not storage.versioned:
        raise MigrationError(
            f"{str(old.path)!r} is a versioned store (it was opened with deps_path); migrate "
            "into a storage opened with the same deps_path, e.g. "
            "Storage('new.db', deps_path='src/'), or mandala migrate OLD NEW --deps-path src/"
        )
    return VersionMap(versioner, storage, report)
