"""Text views of the code history: versions of an op, the code of a version, diffs, histories.

Pure functions from the versioner's rows to strings; the Storage prints them.
"""

from __future__ import annotations

import datetime
import difflib
from typing import Any

from mandala.errors import InvalidIdError
from mandala.versioning.components import Kind, checked_key, original_function
from mandala.versioning.versioner import Versioner

__all__ = ["versions_text", "code_text", "diff_text", "history_text", "find_content_versions"]


def _version_ids(versioner: Versioner) -> list[tuple[bytes, bytes, str, float]]:
    return versioner.rows.versions()


def find_content_versions(versioner: Versioner, version_id: str) -> list[bytes]:
    """Content versions named by ``version_id`` (at least 6 hex characters): the content
    version it starts, else every content version whose semantic version it starts.

    Raises:
        InvalidIdError: the prefix starts several content versions.
    """
    wanted = version_id.lower()
    if len(wanted) < 6:
        return []
    rows = _version_ids(versioner)
    by_content = [c for c, _, _, _ in rows if c.hex().startswith(wanted)]
    if len(by_content) > 1:
        raise InvalidIdError(
            f"version id {version_id!r} is ambiguous ({len(by_content)} versions); give more "
            "characters"
        )
    return by_content or [c for c, s, _, _ in rows if s.hex().startswith(wanted)]


def _grouped_code(
    versioner: Versioner, support: list[tuple[int, bytes]], show_commit_ids: bool = False
) -> str:
    components = versioner.components()
    by_id = {c.id: c for c in components.values()}
    sources = versioner.rows.commit_sources(support)
    modules: dict[str, list[tuple[Any, bytes, str]]] = {}
    for component_id, content in support:
        component = by_id.get(component_id)
        if component is None:
            continue
        text = sources.get((component_id, content), "")
        modules.setdefault(component.key.module, []).append((component, content, text))
    parts = []
    for module in sorted(modules):
        parts.append(f'### IN MODULE "{module}"')
        entries = sorted(
            modules[module], key=lambda e: (e[0].kind != Kind.GLOBAL, e[0].key.qualname)
        )
        current_class = None
        for component, content, text in entries:
            if component.kind == Kind.GLOBAL:
                parts.append(f"{component.key.qualname} = {text}")
                continue
            owner = component.key.qualname.rpartition(".")[0]
            if owner and owner != current_class:
                parts.append(f"### in class {owner}:")
                current_class = owner
            if show_commit_ids:
                parts.append(f"### commit {content.hex()}")
            parts.append(text)
            parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def versions_text(
    versioner: Versioner, op: Any, plain: bool = False, show_dep_commit_ids: bool = False
) -> str:
    """Every stored version of an op, with the code of all its dependencies."""
    target = original_function(op)
    name = getattr(op, "name", target.__name__)
    module = target.__module__
    rows = versioner.rows.versions(name)
    if not rows:
        return f'No stored versions of "{name}" from module "{module}".\n'
    supports = versioner.rows.supports(c for c, _, _, _ in rows)
    blocks = []
    for content, semantic, _, created in rows:
        support = supports.get(content, [])
        if plain:
            header = (
                f'Version of "{name}" from module "{module}" (content: {content.hex()}, '
                f"semantic: {semantic.hex()})"
            )
        else:
            header = (
                f"### Dependencies for version of function {name} from module {module}\n"
                f"### content_version_id={content.hex()}\n"
                f"### semantic_version_id={semantic.hex()}\n"
                f"### created {datetime.datetime.fromtimestamp(created):%Y-%m-%d %H:%M:%S}"
            )
        blocks.append(header + "\n" + _grouped_code(versioner, support, show_dep_commit_ids))
    return "\n".join(blocks)


def code_text(versioner: Versioner, version_id: str) -> str:
    """The code of a call version (all its dependencies), or of one component commit.

    Raises:
        ValueError: no version or commit has this id.
    """
    found = find_content_versions(versioner, version_id)
    if found:
        supports = versioner.rows.supports(found[-1:])
        return _grouped_code(versioner, supports.get(found[-1], []))
    wanted = version_id.lower()
    for component in versioner.components().values():
        for content in component.commits:
            if content.hex().startswith(wanted) and len(wanted) >= 6:
                sources = versioner.rows.commit_sources([(component.id, content)])
                return sources.get((component.id, content), "") + "\n"
    raise ValueError(f"version id {version_id} not found")


def diff_text(versioner: Versioner, id_1: str, id_2: str, context_lines: int = 2) -> str:
    """A unified diff between the code of two versions (or commits)."""
    old = code_text(versioner, id_1).splitlines()
    new = code_text(versioner, id_2).splitlines()
    return "\n".join(difflib.unified_diff(old, new, id_1, id_2, n=context_lines, lineterm=""))


def history_text(versioner: Versioner, obj: Any, show_commit_ids: bool = False) -> str:
    """The commits of one component's own source, oldest first, the checked-out one marked."""
    key = checked_key(obj, "source_history")
    component = versioner.components().get(key)
    if component is None:
        return f"No history for {key.module}.{key.qualname}: no versioned call used it yet.\n"
    commits = [c for c in versioner.rows.load_commits() if c.component_id == component.id]
    commits.sort(key=lambda c: c.created_at)
    sources = versioner.rows.commit_sources((component.id, c.content_hash) for c in commits)
    parts = [f"### History of {key.module}.{key.qualname}"]
    for commit in commits:
        marks = []
        if commit.content_hash == component.head:
            marks.append("===HEAD===")
        if commit.parent_hash is not None:
            compatible = commit.semantic_hash != commit.content_hash
            marks.append("compatible change" if compatible else "breaking change")
        else:
            marks.append("first version")
        header = "### " + " ".join(marks)
        if show_commit_ids:
            header += (
                f" (commit {commit.content_hash.hex()}, semantic {commit.semantic_hash.hex()})"
            )
        parts.append(header)
        parts.append(sources.get((component.id, commit.content_hash), ""))
    return "\n".join(parts) + "\n"
