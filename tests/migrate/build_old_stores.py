"""Build the test stores with the original library (pymandala 0.2.0a0), in its own venv.

    python3 -m venv /work/venv-orig
    /work/venv-orig/bin/pip install pymandala==0.2.0a0 "pandas<3" pyarrow tqdm ipython \
        prettytable graphviz
    /work/venv-orig/bin/python tests/migrate/build_old_stores.py

writes ``tests/migrate/data/*.db``: ``plain.db``, ``collections.db``, ``pipeline.db``,
``unknown.db`` (a value of a user class) and ``versioned.db`` (``deps_path``, two versions of
``square``). The ops are those of ``pipeline_ops.py`` and ``versioned_v1.py`` /
``versioned_v2.py``, which the tests re-run on this release after migrating.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
ROOT = HERE.parent.parent


def _compact(path: Path) -> None:
    """Fold the WAL into the file and vacuum it, so that the committed store is one small file."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("VACUUM")
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


PLAIN_STORES = ("plain", "collections", "pipeline", "unknown")


def build_one(name: str) -> None:
    """Run ``<name>_script`` of pipeline_ops on a new store (in a child process, which holds
    the original's connection until it exits)."""
    sys.path.append(str(ROOT))  # after the venv, whose mandala is the original
    from mandala.imports import Storage
    from tests.migrate import pipeline_ops as ops

    storage = Storage(db_path=str(DATA / f"{name}.db"))
    getattr(ops, f"{name}_script")(storage)


def build_plain_stores() -> None:
    for name in PLAIN_STORES:
        path = DATA / f"{name}.db"
        path.unlink(missing_ok=True)
        subprocess.run([sys.executable, __file__, "--one", name], check=True)
        _compact(path)


_VERSIONED_RUN = """
import sys
from unittest import mock
sys.path.insert(0, {deps!r})
sys.path.append({root!r})
import vmod
from mandala.imports import Storage
storage = Storage(db_path={db!r}, deps_path={deps!r})
with mock.patch("builtins.input", lambda *a: "y"):
    with storage:
        for x in range(3):
            vmod.square(vmod.inc(x))
"""


def build_versioned_store() -> None:
    path = DATA / "versioned.db"
    path.unlink(missing_ok=True)
    deps = Path(tempfile.mkdtemp())
    try:
        for source in ("versioned_v1.py", "versioned_v2.py"):
            shutil.copy(HERE / source, deps / "vmod.py")
            shutil.rmtree(deps / "__pycache__", ignore_errors=True)
            code = _VERSIONED_RUN.format(deps=str(deps), db=str(path), root=str(ROOT))
            subprocess.run([sys.executable, "-c", code], check=True, cwd=deps, env=os.environ)
    finally:
        shutil.rmtree(deps)
    _compact(path)


if __name__ == "__main__" and sys.argv[1:2] == ["--one"]:
    build_one(sys.argv[2])
elif __name__ == "__main__":
    DATA.mkdir(exist_ok=True)
    build_plain_stores()
    build_versioned_store()
    for db in sorted(DATA.glob("*.db")):
        print(f"{db.name}: {db.stat().st_size} bytes")
