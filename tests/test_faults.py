"""Faults found by trying the store as an attacker and as an unlucky user would.

Each test reproduces one way the store used to break a promise (a silent wrong value, someone
else's code run on read, a confusing failure far from its cause) and checks the promise now.
See ``docs/storage.md`` ("Guarantees and their limits") for the policy each one tests.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from mandala.errors import (
    CorruptValueError,
    InputMutationError,
    InputMutationWarning,
    OpDefinitionError,
    UnsafePickleError,
)
from mandala.imports import Storage, op

# ---------------------------------------------------------------------- 1. mutated inputs


@op
def make_list() -> list[int]:
    return [1, 2]


@op
def append99(xs: list[int]) -> int:
    xs.append(99)
    return len(xs)


@op
def total(xs: list[int]) -> int:
    return sum(xs)


def test_an_op_mutating_a_raw_input_does_not_change_the_stored_value(storage: Storage) -> None:
    with storage:
        make_list()
    with pytest.warns(InputMutationWarning, match=r"append99.*'xs'"), storage:
        append99([1, 2])
    with storage:
        again = make_list()
    assert storage.unwrap(again) == [1, 2]
    assert storage.verify().ok


def test_an_op_mutating_a_ref_input_leaves_the_ref_with_its_stored_value(storage: Storage) -> None:
    with pytest.warns(InputMutationWarning), storage:
        xs = make_list()
        append99(xs)
        # the ref still means [1, 2]: the next op sees that value, not the mutated object
        t = total(xs)
    assert storage.unwrap(xs) == [1, 2]
    assert storage.unwrap(t) == 3
    with storage:
        assert storage.unwrap(total([1, 2])) == 3


def test_the_call_of_a_mutating_op_is_stored_for_the_inputs_it_was_given(
    storage: Storage,
) -> None:
    with pytest.warns(InputMutationWarning), storage:
        n = append99([1, 2])
    assert storage.unwrap(n) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with storage:
            hit = append99([1, 2])  # a memo hit: the op does not run, nothing is mutated
    assert storage.unwrap(hit) == 3
    (call,) = storage.cf(append99).calls.values()
    assert storage.unwrap(call.inputs["xs"]) == [1, 2]


def test_input_mutation_error_policy_refuses_and_records_nothing(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "s.db", on_input_mutation="error")
    with pytest.raises(InputMutationError, match=r"append99.*'xs'") as raised, storage:
        append99([1, 2])
    assert "on_input_mutation" in str(raised.value)
    assert storage.cf(append99).df().empty
    with storage:
        assert storage.unwrap(total([1, 2])) == 3  # other ops still work


def test_input_mutation_ignore_policy_still_stores_the_value_as_hashed(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "s.db", on_input_mutation="ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with storage:
            append99([1, 2])
    (call,) = storage.cf(append99).calls.values()
    assert storage.unwrap(call.inputs["xs"]) == [1, 2]


def test_an_unknown_mutation_policy_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="on_input_mutation"):
        Storage(tmp_path / "s.db", on_input_mutation="sometimes")


def test_mutation_is_detected_in_versioned_calls(tmp_path: Path) -> None:
    module = tmp_path / "mutating_ops.py"
    module.write_text(
        textwrap.dedent(
            """
            from mandala.imports import op

            @op
            def grow(xs):
                xs.append(0)
                return len(xs)
            """
        )
    )
    sys.path.insert(0, str(tmp_path))
    try:
        import mutating_ops  # type: ignore[import-not-found]

        storage = Storage(tmp_path / "s.db", deps_path=tmp_path)
        with pytest.warns(InputMutationWarning, match="grow"), storage:
            storage.unwrap(mutating_ops.grow([5]))
        (call,) = storage.cf(mutating_ops.grow).calls.values()
        assert storage.unwrap(call.inputs["xs"]) == [5]
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("mutating_ops", None)


def test_mutation_is_detected_in_a_parallel_block_of_threads(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    storage = Storage(tmp_path / "s.db")
    with (
        ThreadPoolExecutor(1) as pool,
        pytest.warns(InputMutationWarning, match="append99"),
        storage.parallel(pool),
    ):
        append99([1, 2])
    (call,) = storage.cf(append99).calls.values()
    assert storage.unwrap(call.inputs["xs"]) == [1, 2]


def test_a_parallel_block_of_processes_stores_the_inputs_as_passed(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "s.db")
    with storage.parallel(max_workers=1):
        append99([1, 2])
    (call,) = storage.cf(append99).calls.values()
    assert storage.unwrap(call.inputs["xs"]) == [1, 2]
    assert storage.unwrap(call.outputs["output_0"]) == 3


# ------------------------------------------------------- 2. blob adopted after a crash

_CRASH_BEFORE_COMMIT = """
import os, signal, sys
import numpy as np
from mandala.imports import Storage, op
from mandala.backends.sql import SqlBackend

@op
def big(n):
    return np.arange(n, dtype=np.float64)

def die(self, batch):
    os.kill(os.getpid(), signal.SIGKILL)

SqlBackend.write = die
storage = Storage(sys.argv[1], overflow_threshold_MB=0.01)
with storage:
    big(100_000)
"""


def test_a_blob_left_by_a_killed_writer_is_checked_before_it_is_adopted(tmp_path: Path) -> None:
    import numpy as np

    db = tmp_path / "s.db"
    child = subprocess.run(
        [sys.executable, "-c", _CRASH_BEFORE_COMMIT, str(db)], capture_output=True, text=True
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    blob_dir = Path(f"{db}.blobs")
    (leftover,) = [p for p in blob_dir.rglob("*") if p.is_file()]

    @op
    def big(n: int) -> np.ndarray:
        return np.arange(n, dtype=np.float64)

    storage = Storage(db, overflow_threshold_MB=0.01)
    with storage:
        result = big(100_000)
    report = storage.verify()
    assert report.ok, str(report)
    with sqlite3.connect(db) as conn:
        unchecked = conn.execute(
            "SELECT COUNT(*) FROM stored_values WHERE checksum IS NULL"
        ).fetchone()[0]
    assert unchecked == 0
    # Bit rot in the adopted file is now caught, by verify() and on read.
    data = bytearray(leftover.read_bytes())
    data[-8] ^= 0xFF
    leftover.write_bytes(bytes(data))
    assert not Storage(db).verify().ok
    del result
    fresh = Storage(db, overflow_threshold_MB=0.01)
    with fresh:
        stored = big(100_000)  # a memo hit: the value is read from the damaged file
    with pytest.raises(CorruptValueError, match="checksum"):
        fresh.unwrap(stored)


def test_a_damaged_leftover_blob_is_replaced_not_adopted(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    child = subprocess.run(
        [sys.executable, "-c", _CRASH_BEFORE_COMMIT, str(db)], capture_output=True, text=True
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    (leftover,) = [p for p in Path(f"{db}.blobs").rglob("*") if p.is_file()]
    leftover.write_bytes(leftover.read_bytes()[: leftover.stat().st_size // 2])  # torn file

    import numpy as np

    @op
    def big(n: int) -> np.ndarray:
        return np.arange(n, dtype=np.float64)

    storage = Storage(db, overflow_threshold_MB=0.01)
    with storage:
        big(100_000)
    assert storage.verify().ok
    reader = Storage(db, overflow_threshold_MB=0.01)
    with reader:
        again = big(100_000)
    np.testing.assert_array_equal(reader.unwrap(again), np.arange(100_000, dtype=np.float64))


def test_verify_flags_a_value_row_without_a_checksum(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    storage = Storage(db)
    with storage:
        make_list()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE stored_values SET checksum = NULL")
    report = Storage(db).verify()
    assert not report.ok
    assert "checksum" in str(report)


# ----------------------------------------------------------- 3. pickles of untrusted stores


def _touch_marker(path: str) -> str:
    Path(path).touch()
    return "payload ran"


class Hostile:
    """A value whose unpickling runs code (what a hostile store would hold)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (_touch_marker, (self.marker,))


@op
def make_hostile(marker: str) -> Hostile:
    return Hostile(marker)


def test_copy_from_an_untrusted_store_refuses_pickled_values(tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    source = Storage(tmp_path / "theirs.db")
    with source:
        make_hostile(str(marker))
        make_list()
    source.commit()
    untrusted = Storage(tmp_path / "theirs.db", allow_pickle=False)
    team = Storage(tmp_path / "team.db")
    with pytest.raises(UnsafePickleError, match="allow_pickle=True") as raised:
        untrusted.copy_to(team)
    assert "make_hostile" in str(raised.value)
    assert not marker.exists()
    assert team.cf(make_hostile).df().empty
    assert team.cf(make_list).df().empty  # nothing half-copied


def test_copy_from_an_untrusted_store_of_safe_values_works(tmp_path: Path) -> None:
    source = Storage(tmp_path / "theirs.db")
    with source:
        make_list()
    source.commit()
    team = Storage(tmp_path / "team.db")
    Storage(tmp_path / "theirs.db", allow_pickle=False).copy_to(team)
    with team:
        assert team.unwrap(make_list()) == [1, 2]


def test_copy_from_a_trusted_store_carries_pickles(tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    source = Storage(tmp_path / "theirs.db")
    with source:
        make_hostile(str(marker))
    source.commit()
    team = Storage(tmp_path / "team.db")
    report = Storage(tmp_path / "theirs.db", allow_pickle=True).copy_to(team)
    assert report.calls_copied == 1
    assert not marker.exists()  # copying never unpickles


# ------------------------------------------------------- 4. another output count, same name


def test_a_changed_output_count_under_the_same_name_is_refused(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "s.db")

    @op
    def stats(x: int) -> int:
        return x

    with storage:
        stats(3)

    @op(nout=2)  # type: ignore[no-redef]
    def stats(x: int) -> tuple[int, int]:
        return x, x + 1

    with pytest.raises(OpDefinitionError, match=r"stats.*version") as raised, storage:
        stats(3)
    message = str(raised.value)
    assert "1 output" in message and "2 outputs" in message


def test_a_changed_output_count_in_a_new_version_is_fine(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "s.db")

    @op
    def stats(x: int) -> int:
        return x

    with storage:
        stats(3)

    @op(nout=2, version=1)  # type: ignore[no-redef]
    def stats(x: int) -> tuple[int, int]:
        return x, x + 1

    with storage:
        a, b = stats(3)
    assert storage.unwrap((a, b)) == (3, 4)


def test_renamed_outputs_under_the_same_name_are_refused(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "s.db")

    @op(output_names=["mean", "std"])
    def summary(x: int) -> tuple[int, int]:
        return x, 0

    with storage:
        summary(3)

    @op(output_names=["lo", "hi"])  # type: ignore[no-redef]
    def summary(x: int) -> tuple[int, int]:
        return x, 0

    with pytest.raises(OpDefinitionError, match=r"summary.*'mean', 'std'"), storage:
        summary(3)


# ------------------------------------------------------------------------------ also


def test_verify_reports_a_value_whose_bytes_became_text_and_does_not_crash(
    tmp_path: Path,
) -> None:
    db = tmp_path / "s.db"
    storage = Storage(db)
    with storage:
        make_list()
        total([4, 5])
    with sqlite3.connect(db) as conn:
        (key,) = conn.execute("SELECT content_key FROM stored_values LIMIT 1").fetchone()
        conn.execute(
            "UPDATE stored_values SET data = CAST(data AS TEXT) WHERE content_key = ?", (key,)
        )
    report = Storage(db).verify()
    assert not report.ok
    assert key.hex() in str(report)


_FILL_DISK = """
import resource, signal, sys
from mandala.imports import Storage, op

@op
def blob(i):
    return bytes(200_000) + i.to_bytes(4, "little")

storage = Storage(sys.argv[1])
with storage:
    for i in range(3):
        blob(i)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
try:
    with storage:
        for i in range(3, 60):
            blob(i)
except Exception as error:
    print(type(error).__name__, error, sep="|")
    sys.exit(3)
sys.exit(0)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE as a full disk: Linux")
def test_a_full_disk_mid_commit_leaves_the_store_consistent_and_says_so(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    child = subprocess.run(
        [sys.executable, "-c", _FILL_DISK, str(db), str(2_000_000)],
        capture_output=True,
        text=True,
    )
    assert child.returncode == 3, (child.stdout, child.stderr)
    name, _, message = child.stdout.strip().partition("|")
    assert name in {"StorageError", "OSError", "DiskFullError"}, child.stdout
    assert "disk" in message.lower() or "space" in message.lower() or "file" in message.lower()
    storage = Storage(db)
    report = storage.verify()
    assert report.ok, str(report)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    # what was committed before the disk filled is whole and answers as memo hits
    @op
    def blob(i: int) -> bytes:
        raise AssertionError("recomputed a call committed before the disk filled")

    with storage:
        for i in range(3):
            assert storage.unwrap(blob(i))[-4:] == i.to_bytes(4, "little")
