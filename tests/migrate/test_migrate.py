"""Migrating stores of the original library (built by build_old_stores.py with pymandala
0.2.0a0): the same scripts re-run on the new store compute nothing and give the frames of a
fresh run of this release."""

from __future__ import annotations

import hashlib
import importlib
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mandala.errors import MigrationError, StorageError
from mandala.migrate import from_pymandala
from mandala.storage import Storage
from tests.migrate import pipeline_ops as ops

DATA = Path(__file__).parent / "data"
HERE = Path(__file__).parent

SCRIPTS: dict[str, tuple[Callable[[Any], None], list[Any]]] = {
    "plain": (ops.plain_script, [ops.scale, ops.noisy]),
    "collections": (ops.collections_script, [ops.total, ops.doubled]),
    "pipeline": (ops.pipeline_script, [ops.scale]),
}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _frame(storage: Storage, op: Any) -> list[str]:
    """The full history frame of ``op``, as sorted row strings (cells by repr: ids included)."""
    df = storage.cf(op).expand_back(recursive=True).df()
    df = df[sorted(df.columns)]
    return sorted(
        "|".join(
            f"{c}={v!r}" if not isinstance(v, float) or v == v else f"{c}=nan"
            for c, v in row.items()
        )
        for _, row in df.astype(object).iterrows()
    )


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_a_migrated_store_computes_nothing_and_gives_the_frames_of_a_fresh_run(
    name: str, storage: Storage, tmp_path: Path
) -> None:
    script, frame_ops = SCRIPTS[name]
    old = DATA / f"{name}.db"
    before = _digest(old)
    report = from_pymandala(old, storage)
    assert report.ok, report.lines()
    assert report.calls.converted > 0 and report.values.converted > 0
    assert _digest(old) == before
    assert not Path(str(old) + "-wal").exists()

    ops.EXECUTIONS.clear()
    script(storage)
    assert ops.EXECUTIONS == []  # every call is a memo hit

    fresh = Storage(str(tmp_path / "fresh.db"))
    script(fresh)
    assert ops.EXECUTIONS  # the fresh run does compute (the counter works)
    for op in frame_ops:
        assert _frame(storage, op) == _frame(fresh, op)


def test_collections_are_counted() -> None:
    storage = Storage(":memory:")
    report = from_pymandala(DATA / "collections.db", storage)
    assert report.collections.converted >= 5
    assert report.ops.converted == 4


def test_a_second_migration_adds_nothing(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path / "new.db"))
    first = from_pymandala(DATA / "plain.db", storage)
    second = from_pymandala(DATA / "plain.db", storage)
    assert first.converted > 0
    assert second.converted == 0
    assert second.calls.present == first.calls.converted
    assert second.ops.present == first.ops.converted
    assert second.collections.present == first.collections.converted


def test_an_unknown_value_type_is_reported_and_its_dependents_skipped() -> None:
    storage = Storage(":memory:")
    report = from_pymandala(DATA / "unknown.db", storage)
    kinds = sorted((p.kind, p.op_name) for p in report.problems)
    assert kinds == [
        ("call", "unwrap_unknown"),
        ("call", "wrap_unknown"),
        ("value", "wrap_unknown"),
    ]
    assert "tests.migrate.pipeline_ops.Unknown" in report.problems[0].reason
    assert "allow_pickle=True" in report.problems[0].reason
    assert report.calls.converted == 1 and report.calls.skipped == 2
    ops.EXECUTIONS.clear()
    ops.unknown_script(storage)
    assert ops.EXECUTIONS == ["wrap_unknown", "unwrap_unknown"]  # add_sub(1) was migrated


def test_allow_pickle_loads_user_types() -> None:
    storage = Storage(":memory:")
    report = from_pymandala(DATA / "unknown.db", storage, allow_pickle=True)
    assert report.ok, report.lines()
    ops.EXECUTIONS.clear()
    ops.unknown_script(storage)
    assert ops.EXECUTIONS == []


def test_the_restricted_unpickler_never_imports_an_unlisted_module() -> None:
    import pickle

    from mandala.errors import UnsafePickleError
    from mandala.migrate.unpickle import load_pickle

    class Evil:
        def __reduce__(self) -> Any:
            import os

            return (os.system, ("echo should-not-run",))

    with pytest.raises(UnsafePickleError, match="system"):
        load_pickle(pickle.dumps(Evil()))
    with pytest.raises(UnsafePickleError, match="tests.migrate.pipeline_ops.Unknown"):
        load_pickle(pickle.dumps(ops.Unknown(3)))
    # the original's own classes become inert records even with allow_pickle
    assert type(load_pickle(pickle.dumps(ops.Unknown(3)), allow_pickle=True)) is ops.Unknown


def test_a_file_that_is_not_an_original_store_is_refused(tmp_path: Path) -> None:
    ours = tmp_path / "ours.db"
    Storage(str(ours)).close()
    with pytest.raises(MigrationError, match="already a store of this release"):
        from_pymandala(ours, Storage(":memory:"))
    with pytest.raises(MigrationError, match="no store"):
        from_pymandala(tmp_path / "missing.db", Storage(":memory:"))


def test_opening_an_original_store_says_to_migrate(tmp_path: Path) -> None:
    copy = tmp_path / "old.db"
    shutil.copy(DATA / "plain.db", copy)
    with pytest.raises(StorageError, match="mandala migrate"):
        Storage(str(copy))


# ---------------------------------------------------------------------- versioned


def _vmod(tmp_path: Path, source: str) -> Any:
    deps = tmp_path / "deps"
    deps.mkdir(exist_ok=True)
    shutil.copy(HERE / source, deps / "vmod.py")
    shutil.rmtree(deps / "__pycache__", ignore_errors=True)
    if str(deps) not in sys.path:
        sys.path.insert(0, str(deps))
    sys.modules.pop("vmod", None)
    importlib.invalidate_caches()
    return importlib.import_module("vmod")


def _versioned_script(vmod: Any, storage: Storage) -> None:
    with storage:
        for x in range(3):
            vmod.square(vmod.inc(x))


def test_a_versioned_store_keeps_both_versions(tmp_path: Path) -> None:
    try:
        vmod = _vmod(tmp_path, "versioned_v2.py")
        deps = str(tmp_path / "deps")
        with pytest.raises(MigrationError, match="deps_path"):
            from_pymandala(DATA / "versioned.db", Storage(":memory:"))
        storage = Storage(str(tmp_path / "new.db"), deps_path=deps, on_change="error")
        report = from_pymandala(DATA / "versioned.db", storage)
        assert report.ok, report.lines()
        assert report.versions.converted == 3  # inc, square v1, square v2
        again = from_pymandala(DATA / "versioned.db", storage)
        assert again.converted == 0 and again.versions.present == 3

        ops.EXECUTIONS.clear()
        _versioned_script(vmod, storage)
        assert ops.EXECUTIONS == []  # the current code (v2) hits
        migrated_frame = _frame(storage, vmod.square)

        # a fresh run of v1 then v2 on this release gives the same frame
        fresh = Storage(str(tmp_path / "fresh.db"), deps_path=deps, on_change="new_version")
        _versioned_script(_vmod(tmp_path, "versioned_v1.py"), fresh)
        vmod = _vmod(tmp_path, "versioned_v2.py")
        _versioned_script(vmod, fresh)
        assert ops.EXECUTIONS.count("square") == 6
        assert _frame(fresh, vmod.square) == migrated_frame

        # the old code hits its own migrated version too
        ops.EXECUTIONS.clear()
        storage = Storage(str(tmp_path / "new.db"), deps_path=deps, on_change="error")
        _versioned_script(_vmod(tmp_path, "versioned_v1.py"), storage)
        assert ops.EXECUTIONS == []
    finally:
        sys.modules.pop("vmod", None)
        if str(tmp_path / "deps") in sys.path:
            sys.path.remove(str(tmp_path / "deps"))


def test_frames_compare_values() -> None:
    # _frame must see a difference in values (guards the comparison helper itself)
    a, b = Storage(":memory:"), Storage(":memory:")
    with a:
        ops.add_sub(1)
    with b:
        ops.add_sub(2)
    assert _frame(a, ops.add_sub) != _frame(b, ops.add_sub)
    assert isinstance(pd.DataFrame(), pd.DataFrame)
