"""Computation frames on large stores: build the frame of a pipeline and extract its table.

The pipeline runs over N inputs: ``make_data(seed)``, then ``train(data, lr)`` for three learning
rates, then ``evaluate(model, data)``; that is 7N stored calls and 3N rows. One store grows
through the public API (committed in blocks of ``_BLOCK`` inputs, in a child process) and is
measured, closed, at each size of ``--sizes`` (total calls stored), before it grows further.

Each repetition runs in a fresh interpreter on the closed store (a new Storage: nothing cached):

- mandala: ``storage.cf(evaluate).expand_back(recursive=True)`` ("frame"), then ``.df()``
  ("df"), each timed; the peak RSS of the process above its level before the frame (both
  steps), and the rows returned.
- pandas-merge, the floor: read the edges of the three ops' calls with SQL into DataFrames,
  pivot each into a table of calls, merge the three on the refs they share, and decode the
  values of the five value columns (with mandala's own decoder). This is the same table,
  without Call objects.
- pandas-keys: the same without decoding values (keys only).
- columnar: the same table with each column read as one SQL aggregate (as mandala's bulk reads
  do) and kept in numpy arrays, values decoded by numpy: what a frame built on key arrays could
  approach (no Python object per cell, no Call objects).

Both sides must return the same number of rows and the same sum of scores, or the run fails.
``python3 -m bench.frames --profile [SIZE]`` prints a cProfile of the frame path instead.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from bench.config import Config
from bench.measure import ROOT, clock, store_size, temp_dir
from bench.report import Row, Target
from mandala.imports import Storage, op

if TYPE_CHECKING:
    from mandala.frames.frame import ComputationFrame

__all__ = ["frames", "make_data", "train", "evaluate", "LRS"]

LRS = (0.1, 0.01, 0.001)
"""Learning rates: each dataset branches into len(LRS) models."""
CALLS_PER_INPUT = 1 + 2 * len(LRS)
_BLOCK = 10_000
"""Inputs per ``with storage:`` block while building (70k calls per commit)."""
TARGET_S = {100_000: 1.0, 1_000_000: 10.0}
"""Seconds allowed for frame + df, by store size (calls)."""
TARGET_MB = {1_000_000: 2000.0}
"""Peak memory allowed (MB), by store size."""


@op(output_names=["data"])
def make_data(seed):
    return seed * 0.5


@op(output_names=["model"])
def train(data, lr):
    return data * lr


@op(output_names=["score"])
def evaluate(model, data):
    return model - data


def _label(size: int) -> str:
    if size >= 1_000_000 and size % 1_000_000 == 0:
        return f"{size // 1_000_000}M"
    if size >= 1_000 and size % 1_000 == 0:
        return f"{size // 1_000}k"
    return str(size)


def _grow(db: Path, first: int, last: int) -> float:
    """Run the pipeline for inputs ``first..last-1`` into the store at ``db``; seconds taken."""
    storage = Storage(db)
    start = clock()
    for block in range(first, last, _BLOCK):
        with storage:
            for seed in range(block, min(last, block + _BLOCK)):
                data = make_data(seed)
                for lr in LRS:
                    evaluate(train(data, lr), data)
    seconds = clock() - start
    storage.close()
    return seconds


# ---------------------------------------------------------------------------- child tasks


def _memory_mark() -> tuple[int, bool]:
    import gc

    from bench.measure import reset_peak_rss, rss_bytes

    gc.collect()
    before = rss_bytes()
    return before, reset_peak_rss()


def _peak_above(before: int, reset: bool) -> float | None:
    from bench.measure import peak_rss_bytes

    return (peak_rss_bytes() - before) / 1e6 if reset else None


def task_mandala(task: dict[str, Any]) -> dict[str, Any]:
    """Frame and df on a closed store, in this fresh process."""
    import pandas  # noqa: F401 - imported before measuring: not part of the frame's cost

    import mandala.frames.frame  # noqa: F401

    storage = Storage(task["db"])
    before, reset = _memory_mark()
    start = clock()
    cf = cast("ComputationFrame", storage.cf(evaluate).expand_back(recursive=True))
    frame_s = clock() - start
    start = clock()
    df = cf.df()
    df_s = clock() - start
    peak = _peak_above(before, reset)
    selections = {}
    some_seeds = [key.hex() for key in list(cf.vs["seed"])[::10]]
    for name, select in (
        ("isin", lambda: cf.isin(some_seeds, by="hid")),
        ("where", lambda: cf.where("lr", lambda lr: lr > 0.005)),
        ("upstream", lambda: cf.upstream("score")),
        ("downstream", lambda: cf.downstream("seed")),
    ):
        start = clock()
        select()
        selections[name] = clock() - start
    result = {
        "frame_s": frame_s,
        "df_s": df_s,
        "selections": selections,
        "peak_mb": peak,
        "rows": len(df),
        "columns": sorted(df.columns),
        "checksum": float(df["score"].sum()),
    }
    storage.close()
    return result


_EDGES_SQL = (
    "SELECT e.call_id, e.direction, e.name, e.ref_key, e.content_key"
    " FROM call_edges e JOIN calls c ON c.call_id = e.call_id"
    " JOIN ops o ON o.op_id = c.op_id WHERE o.name = ?"
)


def task_pandas(task: dict[str, Any]) -> dict[str, Any]:
    """The floor: the same table by SQL + pandas pivots and merges (values decoded or not)."""
    import sqlite3

    import pandas as pd

    from mandala.hashing.serialization import decode

    decode_values = task["values"]
    conn = sqlite3.connect(task["db"])
    before, reset = _memory_mark()
    start = clock()

    def calls(op_name: str) -> pd.DataFrame:
        edges = pd.read_sql_query(_EDGES_SQL, conn, params=(op_name,))
        edges["column"] = edges["name"] + edges["direction"].map({0: "", 1: "_out"})
        refs = edges.pivot(index="call_id", columns="column", values="ref_key")
        contents = edges.pivot(index="call_id", columns="column", values="content_key")
        return refs.join(contents.add_suffix("_cid")).reset_index()

    made = calls("make_data").rename(
        columns={"call_id": "make_data", "data_out": "data", "data_out_cid": "data_cid"}
    )
    trained = (
        calls("train")
        .rename(columns={"call_id": "train", "model_out": "model", "model_out_cid": "model_cid"})
        .drop(columns=["data_cid"])
    )
    scored = (
        calls("evaluate")
        .rename(columns={"call_id": "evaluate", "score_out": "score", "score_out_cid": "score_cid"})
        .drop(columns=["model_cid", "data_cid"])
    )
    table = scored.merge(trained, on=["model", "data"]).merge(made, on="data")
    value_columns = ["seed", "data", "lr", "model", "score"]
    if decode_values:
        stored = pd.read_sql_query("SELECT content_key, format, data FROM stored_values", conn)
        values = {
            key: decode(fmt, data)
            for key, fmt, data in zip(stored["content_key"], stored["format"], stored["data"])
        }
        for column in value_columns:
            table[column] = table[column + "_cid"].map(values)
    seconds = clock() - start
    peak = _peak_above(before, reset)
    conn.close()
    checksum = float(table["score"].sum()) if decode_values else None
    return {"seconds": seconds, "peak_mb": peak, "rows": len(table), "checksum": checksum}


_EDGE_COLUMNS_SQL = (
    "SELECT count(*), group_concat(e.call_id, ','), group_concat(e.direction || e.name, char(31)),"
    " CAST(group_concat(e.ref_key, '') AS BLOB), CAST(group_concat(e.content_key, '') AS BLOB)"
    " FROM call_edges e JOIN calls c ON c.call_id = e.call_id"
    " JOIN ops o ON o.op_id = c.op_id WHERE o.name = ?"
)
_VALUE_COLUMNS_SQL = (
    "SELECT count(*), CAST(group_concat(content_key, '') AS BLOB), group_concat(length(data), ','),"
    " CAST(group_concat(data, '') AS BLOB) FROM stored_values"
    " WHERE format = 'builtin' AND blob_key IS NULL AND data IS NOT NULL"
)


def task_columnar(task: dict[str, Any]) -> dict[str, Any]:
    """A second floor: the same table, with each column read as one aggregate (as mandala's
    bulk reads do) and kept as numpy arrays. Keys are joined by their first 8 bytes, the other 8
    checked after each merge; values are decoded by numpy (all are 8-byte builtin scalars here).
    Cells are numpy numbers, not Python objects, and there are no Call objects: what a frame
    built on key arrays would still have to add."""
    import sqlite3

    import numpy as np
    import pandas as pd

    conn = sqlite3.connect(task["db"])
    before, reset = _memory_mark()
    start = clock()

    def calls(op_name: str) -> dict[str, np.ndarray]:
        count, ids, slots, refs, contents = conn.execute(_EDGE_COLUMNS_SQL, (op_name,)).fetchone()
        call_ids = np.fromstring(ids, dtype=np.int64, sep=",")
        codes, names = pd.factorize(np.array(slots.split("\x1f"), dtype=object))
        ref_words = np.frombuffer(refs, dtype="<u8").reshape(count, 2)
        content_words = np.frombuffer(contents, dtype="<u8").reshape(count, 2)
        columns: dict[str, np.ndarray] = {}
        for code, slot in enumerate(names):
            rows = np.flatnonzero(codes == code)
            rows = rows[np.argsort(call_ids[rows], kind="stable")]  # one row per call, aligned
            name = slot[1:]
            columns[name] = ref_words[rows, 0]
            columns[name + "_check"] = ref_words[rows, 1]
            columns[name + "_cid"] = content_words[rows, 0]
        return columns

    scored = pd.DataFrame(calls("evaluate"))
    trained = pd.DataFrame(calls("train"))
    made = pd.DataFrame(calls("make_data"))
    table = scored.merge(
        trained[["data", "data_check", "lr", "lr_cid", "model", "model_check"]],
        on=["model", "data"],
        suffixes=("", "_t"),
    ).merge(made[["seed", "seed_cid", "data", "data_check"]], on="data", suffixes=("", "_m"))
    for a, b in (
        ("model_check", "model_check_t"),
        ("data_check", "data_check_t"),
        ("data_check", "data_check_m"),
    ):
        if not np.array_equal(table[a].to_numpy(), table[b].to_numpy()):
            raise RuntimeError("columnar floor: two keys share their first 8 bytes")
    count, keys, lengths, data = conn.execute(_VALUE_COLUMNS_SQL).fetchone()
    if not np.all(np.fromstring(lengths, dtype=np.int64, sep=",") == 9):
        raise RuntimeError("columnar floor: a value is not an 8-byte builtin scalar")
    raw = np.frombuffer(data, dtype=np.uint8).reshape(count, 9)
    numbers = np.ascontiguousarray(raw[:, 1:])
    floats = numbers.view("<f8").reshape(-1)
    ints = numbers.view("<i8").reshape(-1).astype(np.float64)
    values = np.where(raw[:, 0] == ord("f"), floats, ints)
    where = pd.Index(np.frombuffer(keys, dtype="<u8").reshape(count, 2)[:, 0])
    for column in ("seed", "data", "lr", "model", "score"):
        table[column] = values[where.get_indexer(table[column + "_cid"].to_numpy())]
    seconds = clock() - start
    peak = _peak_above(before, reset)
    conn.close()
    return {
        "seconds": seconds,
        "peak_mb": peak,
        "rows": len(table),
        "checksum": float(table["score"].sum()),
    }


def task_grow(task: dict[str, Any]) -> dict[str, Any]:
    """Grow the store, in a process of its own: the parent that runs the measured children
    stays small. A parent left holding the half GB a million-call build takes made the
    children's df() about 0.7 s slower (3.2 s against 2.4-2.5 s at 1M), though it sat idle;
    the floors' times did not move."""
    return {"seconds": _grow(Path(task["db"]), task["first"], task["last"])}


TASKS = {
    "mandala": task_mandala,
    "pandas": task_pandas,
    "columnar": task_columnar,
    "grow": task_grow,
}


def _run_child(task: dict[str, Any], timeout: float = 1800) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "bench.frames", "--task", json.dumps(task)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"frames child {task['kind']!r} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- the workload


def _reps(cfg: Config, size: int) -> int:
    # a repetition at 1M calls takes a minute or more; three give a median
    return cfg.reps if size <= 100_000 else min(cfg.reps, 3)


def frames(cfg: Config) -> list[Row]:
    sizes = sorted(set(cfg.sizes))
    rows: list[Row] = []
    done_inputs = 0
    with temp_dir(prefix="mandala-bench-frames-") as root:
        db = root / "frames.db"
        for size in sizes:
            n = max(1, size // CALLS_PER_INPUT)
            label = _label(size)
            build_s = (
                _run_child({"kind": "grow", "db": str(db), "first": done_inputs, "last": n})[
                    "seconds"
                ]
                if n > done_inputs
                else 0.0
            )
            built = (n - done_inputs) * CALLS_PER_INPUT
            done_inputs = max(done_inputs, n)
            samples: dict[str, list[float]] = {}
            peak: dict[str, list[float]] = {}
            expected_rows = n * len(LRS)
            for _ in range(_reps(cfg, size)):
                m = _run_child({"kind": "mandala", "db": str(db)})
                p = _run_child({"kind": "pandas", "db": str(db), "values": True})
                k = _run_child({"kind": "pandas", "db": str(db), "values": False})
                c = _run_child({"kind": "columnar", "db": str(db)})
                if not m["rows"] == p["rows"] == k["rows"] == c["rows"] == expected_rows:
                    raise RuntimeError(
                        f"frames @{label}: rows differ: mandala {m['rows']}, pandas {p['rows']},"
                        f" keys {k['rows']}, columnar {c['rows']}, expected {expected_rows}"
                    )
                for other in (p, c):
                    if abs(m["checksum"] - other["checksum"]) > 1e-6 * max(
                        1.0, abs(other["checksum"])
                    ):
                        raise RuntimeError(
                            f"frames @{label}: mandala and a floor disagree on scores"
                        )
                for name, value in m["selections"].items():
                    samples.setdefault("select " + name, []).append(value)
                for name, value in (
                    ("frame", m["frame_s"]),
                    ("df", m["df_s"]),
                    ("total", m["frame_s"] + m["df_s"]),
                    ("pandas", p["seconds"]),
                    ("keys", k["seconds"]),
                    ("columnar", c["seconds"]),
                ):
                    samples.setdefault(name, []).append(value)
                for name, value in (("mandala", m["peak_mb"]), ("pandas", p["peak_mb"])):
                    if value is not None:
                        peak.setdefault(name, []).append(value)
            calls = n * CALLS_PER_INPUT
            target = TARGET_S.get(size)
            rows += [
                Row(
                    "frames",
                    f"build {built} calls via API, µs/call ({build_s:.1f} s)",
                    [build_s / built * 1e6] if built else [],
                ),
                Row(
                    "frames",
                    f"@{label}: frame + df, s ({calls} calls, {expected_rows} rows)",
                    samples["total"],
                    {
                        "pandas-merge": samples["pandas"],
                        "pandas-keys": samples["keys"],
                        "columnar": samples["columnar"],
                    },
                    Target("<=", target) if target else None,
                ),
                Row("frames", f"  @{label}: frame (cf(evaluate).expand_back), s", samples["frame"]),
                Row("frames", f"  @{label}: df(), s", samples["df"]),
                Row(
                    "frames",
                    f"  @{label}: cf.isin(10% of seeds, by='hid'), s",
                    samples["select isin"],
                    {"pandas-merge": samples["pandas"]},
                ),
                Row(
                    "frames",
                    f"  @{label}: cf.where('lr', lr > 0.005), s",
                    samples["select where"],
                    {"pandas-merge": samples["pandas"]},
                ),
                Row(
                    "frames",
                    f"  @{label}: cf.upstream('score'), s",
                    samples["select upstream"],
                    {"pandas-merge": samples["pandas"]},
                ),
                Row(
                    "frames",
                    f"  @{label}: cf.downstream('seed'), s",
                    samples["select downstream"],
                    {"pandas-merge": samples["pandas"]},
                ),
                Row(
                    "frames",
                    f"  @{label}: µs/row, frame + df",
                    [t / expected_rows * 1e6 for t in samples["total"]],
                    {"pandas-merge": [t / expected_rows * 1e6 for t in samples["pandas"]]},
                ),
            ]
            if peak.get("mandala"):
                mb_target = TARGET_MB.get(size)
                rows += [
                    Row(
                        "frames",
                        f"  @{label}: peak RSS above start, MB",
                        peak["mandala"],
                        {"pandas-merge": peak.get("pandas", [])},
                        Target("<=", mb_target) if mb_target else None,
                    ),
                    Row(
                        "frames",
                        f"  @{label}: peak RSS, bytes/row",
                        [mb * 1e6 / expected_rows for mb in peak["mandala"]],
                        {
                            "pandas-merge": [
                                mb * 1e6 / expected_rows for mb in peak.get("pandas", [])
                            ]
                        },
                    ),
                ]
            rows.append(
                Row("frames", f"  @{label}: store on disk, MB", [store_size(db) / 1e6]),
            )
    return rows


# ---------------------------------------------------------------------------- profile


def profile(size: int, store: Path | None, top: int) -> str:
    """cProfile of frame + df on a store of ``size`` calls (``store`` is kept for reuse)."""
    import cProfile
    import io
    import pstats

    import pandas  # noqa: F401

    import mandala.frames.frame  # noqa: F401

    n = max(1, size // CALLS_PER_INPUT)
    with temp_dir(prefix="mandala-bench-frames-") as root:
        db = store or root / "frames.db"
        if not db.exists():
            print(f"building {n * CALLS_PER_INPUT} calls ...", file=sys.stderr, flush=True)
            _grow(db, 0, n)
        storage = Storage(db)
        out = io.StringIO()
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.enable()
        cf = cast("ComputationFrame", storage.cf(evaluate).expand_back(recursive=True))
        profiler.disable()
        frame_s = time.perf_counter() - start
        profiler_df = cProfile.Profile()
        start = time.perf_counter()
        profiler_df.enable()
        df = cf.df()
        profiler_df.disable()
        df_s = time.perf_counter() - start
        for title, prof, seconds in (
            ("frame: storage.cf(evaluate).expand_back(recursive=True)", profiler, frame_s),
            (f"df: cf.df() -> {len(df)} rows", profiler_df, df_s),
        ):
            out.write(f"\n=== {title}: {seconds:.2f} s under the profiler\n")
            stats = pstats.Stats(prof, stream=out)
            stats.sort_stats("tottime").print_stats(top)
        storage.close()
        return out.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python3 -m bench.frames")
    parser.add_argument("--task", help="(internal) run one child task given as JSON")
    parser.add_argument("--profile", type=int, metavar="SIZE", help="profile at SIZE calls")
    parser.add_argument("--store", type=Path, help="with --profile: store to reuse (or build)")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    if args.task:
        task = json.loads(args.task)
        print(json.dumps(TASKS[task["kind"]](task)))
    elif args.profile:
        print(profile(args.profile, args.store, args.top))
    else:
        parser.error("give --profile SIZE (the workload runs through `python3 -m bench`)")


if __name__ == "__main__":
    main()
