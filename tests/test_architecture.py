"""The layering of DESIGN.md section 3, checked by import-linter, and the lazy optional imports."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_layers_import_downward_only() -> None:
    executable = shutil.which("lint-imports")
    if executable is None:
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    result = subprocess.run(
        [executable, "--config", str(REPO_ROOT / "pyproject.toml")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" in result.stdout and "0 broken" in result.stdout


def test_using_storage_does_not_import_heavy_optional_libraries() -> None:
    code = (
        "import sys\n"
        "from mandala.imports import Storage, op\n"
        "@op\n"
        "def f(x): return x\n"
        "with Storage() as s: f(1)\n"
        "print(sorted(m for m in ('pandas', 'torch', 'dask', 'graphviz', 'psycopg') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
