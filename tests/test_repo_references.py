"""Comments, docstrings and docs point only at files the repository has.

A path-like reference (``docs/hashing.md``, ``tests/harness/kill.py``, ``backends/sql.py``) must
name a file of this checkout, and no text may cite by name a design or reference note kept
outside it: what such notes say that matters is in ``docs/`` (design.md, compatibility.md). References in packages
another branch is refactoring wait in ``tools/pending_refs.txt``; the second test is an expected
failure while that list has entries, and flips (strict) once they are applied.
"""

from __future__ import annotations

import ast
import functools
import io
import os
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PENDING = REPO_ROOT / "tools" / "pending_refs.txt"

PATH_REFERENCE = re.compile(
    r"(?<![\w/.\-])((?:\.\.?/)*[\w\-]+(?:[/.][\w\-]+)*\.(?:md|py))(?![\w/])"
)
"""A relative path or file name ending in ``.md`` or ``.py``."""

NOTE_REFERENCE = re.compile(r"\b(?:REFERENCE|DESIGN|STYLE)(?:\.md)?\s*(?:§|section\b|habit\b|\d)")
"""A citation of a design note by name (``DESIGN §7``, ``REFERENCE.md a.8``, ``STYLE habit 4``)."""

NOT_REFERENCES = {
    "test_cfs.py": "a test file of the original library, downloaded by .ci/run, never committed",
    "vmod.py": "the name a test gives a module it copies into a temporary deps folder",
    "script.py": "the name of a script a test writes into a temporary folder",
}
"""File names that appear in the text without pointing at a file of this repository."""

SEARCHED_FROM = (REPO_ROOT, REPO_ROOT / "mandala")
"""Where a relative path is looked up besides the citing file's folder (``backends/sql.py``
means ``mandala/backends/sql.py``)."""


SKIPPED_FOLDERS = {"build", "dist", "__pycache__"}


def _repository_files() -> list[Path]:
    """Every file of the checkout, without hidden folders (``.git``) and build output."""
    found = []
    for folder, subfolders, names in os.walk(REPO_ROOT):
        subfolders[:] = [
            name
            for name in subfolders
            if not name.startswith(".")
            and name not in SKIPPED_FOLDERS
            and not name.endswith(".egg-info")
        ]
        found.extend(Path(folder) / name for name in names)
    return sorted(found)


def _texts(path: Path) -> Iterator[tuple[int, str]]:
    """``(first line, text)`` of the prose of a file: all of a Markdown file; the comments and
    docstrings of a Python file (its string literals are data, not references)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".md":
        yield 1, text
        return
    if not (PATH_REFERENCE.search(text) or NOTE_REFERENCE.search(text)):
        return  # nothing to find: spare the tokenizer
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                yield first.lineno, first.value.value


def _resolves(reference: str, citing: Path, file_names: set[str]) -> bool:
    if "/" not in reference:
        return reference in file_names or reference in NOT_REFERENCES
    root = REPO_ROOT.resolve()
    for base in (citing.parent, *SEARCHED_FROM):
        target = (base / reference).resolve()
        if target.is_file() and root in target.parents:
            return True
    return False


@functools.cache
def broken_references() -> list[tuple[str, int, str]]:
    """``(file, line, reference)`` of every reference to a file the repository does not have."""
    files = _repository_files()
    file_names = {path.name for path in files}
    found = []
    for path in (path for path in files if path.suffix in (".py", ".md")):
        relative = path.relative_to(REPO_ROOT).as_posix()
        for first_line, text in _texts(path):
            for match in PATH_REFERENCE.finditer(text):
                if not _resolves(match.group(1), path, file_names):
                    line = first_line + text.count("\n", 0, match.start())
                    found.append((relative, line, match.group(1)))
            for match in NOTE_REFERENCE.finditer(text):
                line = first_line + text.count("\n", 0, match.start())
                found.append((relative, line, match.group(0)))
    return found


def pending_references() -> list[tuple[str, str]]:
    """``(file, old text)`` of the entries of ``tools/pending_refs.txt``."""
    entries = []
    for line in PENDING.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            location, old, _new = (part.strip() for part in line.split("|"))
            entries.append((location.rsplit(":", 1)[0], old))
    return entries


def _is_pending(reference: tuple[str, int, str], pending: list[tuple[str, str]]) -> bool:
    path, _, text = reference
    return any(path == file and text in old for file, old in pending)


def test_references_outside_the_pending_list_name_files_of_the_repository() -> None:
    pending = pending_references()
    broken = [ref for ref in broken_references() if not _is_pending(ref, pending)]
    assert broken == [], "references to files the repository does not have:\n" + "\n".join(
        f"{path}:{line}: {text}" for path, line, text in broken
    )


@pytest.mark.xfail(
    bool(pending_references()),
    reason="tools/pending_refs.txt lists references still to repoint after the refactor merges",
    strict=True,
)
def test_every_reference_names_a_file_of_the_repository() -> None:
    broken = broken_references()
    assert broken == [], "\n".join(f"{path}:{line}: {text}" for path, line, text in broken)


def test_the_scan_finds_a_broken_reference(tmp_path: Path) -> None:
    """The patterns catch the kinds of reference this test exists for."""
    text = (
        "See ../shared/DESIGN.md and REFERENCE §a.4, and docs/nowhere.md; docs/hashing.md is fine."
    )
    paths = [m.group(1) for m in PATH_REFERENCE.finditer(text)]
    assert paths == ["../shared/DESIGN.md", "docs/nowhere.md", "docs/hashing.md"]
    citing = REPO_ROOT / "README.md"
    assert [p for p in paths if not _resolves(p, citing, set())] == paths[:2]
    assert [m.group(0) for m in NOTE_REFERENCE.finditer(text)] == ["REFERENCE §"]
