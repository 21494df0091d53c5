"""Per-call cost as the store grows: fresh calls, cold and warm hits, and open time.

The stores are built once per run through the public API, in one growing store that is
snapshotted (closed and copied) at each size; every repetition then works on a fresh copy of a
snapshot, so its fresh calls do not grow the store seen by the next repetition. A raw sqlite
store is built and measured the same way, as the baseline.

A commit leaves the copy of SQLite's log into the database file (the checkpoint) to a background
thread, so the "fresh" row (one block, one commit) does not pay for it; the row after it shows
how long that checkpoint still ran. The "sustained" row is the honest rate: several blocks back to
back, each committed, so each checkpoint competes with the next block's calls and commit, and
the time includes waiting for the last checkpoint.
"""

from __future__ import annotations

import random
from pathlib import Path

from bench import ops
from bench.baselines import RawSqliteMemo
from bench.config import Config
from bench.measure import clock, copy_store, median, settle, store_size, temp_dir
from bench.report import Row, Target
from mandala.imports import Storage

__all__ = ["scaling"]

US = 1e6
_CHUNK = 50_000
"""Calls per ``with storage:`` block while building (bounds the pending rows held in memory)."""


def _label(size: int) -> str:
    if size >= 1_000_000 and size % 1_000_000 == 0:
        return f"{size // 1_000_000}M"
    if size >= 1_000 and size % 1_000 == 0:
        return f"{size // 1_000}k"
    return str(size)


def _build(root: Path, sizes: list[int]) -> tuple[dict[int, Path], dict[int, Path], list[Row]]:
    """Snapshots of a mandala store and of a raw sqlite store at each size; build-time rows."""
    rows: list[Row] = []
    mandala_snaps: dict[int, Path] = {}
    raw_snaps: dict[int, Path] = {}
    db, raw_db = root / "build.db", root / "build-raw.db"
    done = 0
    inc = ops.inc
    # bytes of empty stores, subtracted so that the rows show bytes per stored call
    Storage(root / "empty.db").close()
    RawSqliteMemo(root / "empty-raw.db", ops.inc_plain).close()
    empty, empty_raw = store_size(root / "empty.db"), store_size(root / "empty-raw.db")
    for size in sizes:
        storage = Storage(db)
        start = clock()
        for first in range(done, size, _CHUNK):
            with storage:
                for i in range(first, min(size, first + _CHUNK)):
                    inc(i)
        seconds = clock() - start
        storage.close()
        mandala_snaps[size] = root / f"mandala-{size}.db"
        copy_store(db, mandala_snaps[size])

        raw = RawSqliteMemo(raw_db, ops.inc_plain)
        start = clock()
        for first in range(done, size, _CHUNK):
            for i in range(first, min(size, first + _CHUNK)):
                raw(i)
            raw.commit()
        raw_seconds = clock() - start
        raw.close()
        raw_snaps[size] = root / f"raw-{size}.db"
        copy_store(raw_db, raw_snaps[size])

        count = size - done
        rows.append(
            Row(
                "scaling",
                f"build {_label(done)}->{_label(size)}: µs/call ({seconds:.1f} s)",
                [seconds / count * US],
                {"raw-sqlite": [raw_seconds / count * US]},
            )
        )
        rows.append(
            Row(
                "scaling",
                f"disk B/call @{_label(size)} (minus empty store)",
                [(store_size(mandala_snaps[size]) - empty) / size],
                {"raw-sqlite": [(store_size(raw_snaps[size]) - empty_raw) / size]},
            )
        )
        done = size
    return mandala_snaps, raw_snaps, rows


def _measure(
    snap: Path, raw_snap: Path, work: Path, size: int, m: int, blocks: int, seed: int
) -> dict[str, float]:
    out: dict[str, float] = {}
    count = min(m, size)
    sample = random.Random(seed).sample(range(size), count)
    fresh_args = range(size, size + count)
    inc = ops.inc

    db = work / "m.db"
    copy_store(snap, db)
    settle()
    start = clock()
    storage = Storage(db)
    out["open"] = (clock() - start) * 1e3
    runs = ops.RUNS["inc"]
    settle()
    start = clock()
    with storage:
        for x in sample:
            inc(x)
    out["cold"] = (clock() - start) / count * US
    start = clock()
    with storage:
        for x in sample:
            inc(x)
    out["warm"] = (clock() - start) / count * US
    if ops.RUNS["inc"] != runs:
        raise RuntimeError(f"scaling @{size}: hits ran the op body")
    settle()
    start = clock()
    with storage:
        for x in fresh_args:
            inc(x)
    out["fresh"] = (clock() - start) / count * US
    start = clock()
    storage.backend.wait_for_checkpoints()
    out["fresh_deferred"] = (clock() - start) / count * US
    if ops.RUNS["inc"] != runs + count:
        raise RuntimeError(f"scaling @{size}: fresh calls were not all executed")
    storage.close()

    # Sustained: blocks of fresh calls back to back on a fresh copy, until the checkpoints
    # are done.
    copy_store(snap, db)
    storage = Storage(db)
    runs = ops.RUNS["inc"]
    settle()
    start = clock()
    for block in range(blocks):
        with storage:
            for x in range(size + block * count, size + (block + 1) * count):
                inc(x)
    waited = clock()
    storage.backend.wait_for_checkpoints()
    end = clock()
    out["sustained"] = (end - start) / (blocks * count) * US
    out["sustained_wait"] = (end - waited) / (blocks * count) * US
    if ops.RUNS["inc"] != runs + blocks * count:
        raise RuntimeError(f"scaling @{size}: sustained fresh calls were not all executed")
    storage.close()

    raw_db = work / "raw.db"
    copy_store(raw_snap, raw_db)
    settle()
    start = clock()
    raw = RawSqliteMemo(raw_db, ops.inc_plain)
    out["raw_open"] = (clock() - start) * 1e3
    settle()
    start = clock()
    for x in sample:
        raw(x)
    out["raw_hit"] = (clock() - start) / count * US
    if raw.pending:
        raise RuntimeError("raw sqlite: hits missed")
    settle()
    start = clock()
    for x in fresh_args:
        raw(x)
    raw.commit()
    out["raw_fresh"] = (clock() - start) / count * US
    raw.close()
    copy_store(raw_snap, raw_db)
    raw = RawSqliteMemo(raw_db, ops.inc_plain)
    settle()
    start = clock()
    for block in range(blocks):
        for x in range(size + block * count, size + (block + 1) * count):
            raw(x)
        raw.commit()
    out["raw_sustained"] = (clock() - start) / (blocks * count) * US
    raw.close()
    for path in work.iterdir():
        path.unlink()
    return out


def scaling(cfg: Config) -> list[Row]:
    sizes = sorted(set(cfg.sizes))
    rows: list[Row] = []
    per_size: dict[int, dict[str, list[float]]] = {}
    with temp_dir() as root:
        mandala_snaps, raw_snaps, build_rows = _build(root, sizes)
        rows.extend(build_rows)
        work = root / "work"
        work.mkdir()
        for size in sizes:
            samples: dict[str, list[float]] = {}
            for rep in range(cfg.reps):
                got = _measure(
                    mandala_snaps[size],
                    raw_snaps[size],
                    work,
                    size,
                    cfg.scaling_m,
                    cfg.sustained_blocks,
                    rep,
                )
                for key, value in got.items():
                    samples.setdefault(key, []).append(value)
            per_size[size] = samples
            label = _label(size)
            count = min(cfg.scaling_m, size)
            rows += [
                Row(
                    "scaling",
                    f"open ms @{label}",
                    samples["open"],
                    {"raw-sqlite": samples["raw_open"]},
                    Target("<=", 50),
                ),
                Row(
                    "scaling",
                    f"fresh µs/call @{label} (+commit, {count} calls)",
                    samples["fresh"],
                    {"raw-sqlite": samples["raw_fresh"]},
                ),
                Row(
                    "scaling",
                    f"  checkpoint still running after that commit, µs/call @{label}",
                    samples["fresh_deferred"],
                ),
                Row(
                    "scaling",
                    f"sustained fresh µs/call @{label} ({cfg.sustained_blocks} blocks of"
                    f" {count}, each committed, + last checkpoint)",
                    samples["sustained"],
                    {"raw-sqlite": samples["raw_sustained"]},
                ),
                Row(
                    "scaling",
                    f"  of which waiting for the last checkpoint, µs/call @{label}",
                    samples["sustained_wait"],
                ),
                Row(
                    "scaling",
                    f"cold hit µs/call @{label} (new Storage)",
                    samples["cold"],
                    {"raw-sqlite": samples["raw_hit"]},
                ),
                Row(
                    "scaling",
                    f"warm hit µs/call @{label}",
                    samples["warm"],
                    {"raw-sqlite": samples["raw_hit"]},
                ),
            ]
    if len(sizes) >= 2:
        small, big = sizes[0], sizes[-1]
        for key, raw_key, what in (
            ("fresh", "raw_fresh", "fresh"),
            ("sustained", "raw_sustained", "sustained fresh"),
            ("cold", "raw_hit", "cold hit"),
            ("warm", "raw_hit", "warm hit"),
            ("open", "raw_open", "open"),
        ):
            # The ratio of medians; its spread comes from the per-size samples.
            ratio = median(per_size[big][key]) / median(per_size[small][key])
            raw_ratio = median(per_size[big][raw_key]) / median(per_size[small][raw_key])
            rows.append(
                Row(
                    "scaling",
                    f"{what} cost @{_label(big)} / @{_label(small)}",
                    [ratio],
                    {"raw-sqlite": [raw_ratio]},
                    Target("<=", 1.5) if key != "open" else None,
                )
            )
    return rows
