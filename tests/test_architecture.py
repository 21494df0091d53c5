"""The layering of docs/design.md (Layers), checked by import-linter, and the lazy optional imports.

import-linter is a test dependency (the ``test`` and ``dev`` extras), imported directly: where it
is missing this module fails to import, so the layering check cannot silently skip.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import importlinter.api  # noqa: F401  (configures import-linter: readers and contract types)
import pytest
from importlinter.application import use_cases

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_layers_import_downward_only(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every contract of pyproject.toml is kept, checked in this process (no cache, no CLI)."""
    # the graph is built from the mandala package that this test run imports
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    monkeypatch.chdir(REPO_ROOT)
    passed = use_cases.lint_imports(
        config_filename=str(REPO_ROOT / "pyproject.toml"),
        cache_dir=None,
        is_debug_mode=True,  # a configuration error raises instead of being printed
        no_logo=True,
    )
    report = capsys.readouterr().out
    assert passed, report
    assert "0 broken" in report, report


def test_using_storage_does_not_import_heavy_optional_libraries() -> None:
    code = (
        "import sys\n"
        "from mandala.imports import Storage, op\n"
        "@op\n"
        "def f(x): return x\n"
        "with Storage() as s: f(1)\n"
        "print(sorted(m for m in ('pandas', 'torch', 'dask', 'graphviz', 'psycopg') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
