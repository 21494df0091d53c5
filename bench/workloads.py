"""Per-call workloads on a trivial op: fresh calls, warm hits, cold hits, memory and disk."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

from bench import ops
from bench.baselines import DictMemo, RawSqliteMemo, joblib_memory
from bench.config import Config
from bench.measure import clock, repeat, run_child, settle, store_size, temp_dir
from bench.report import Row, Target
from mandala.imports import Storage

__all__ = ["fresh_and_warm", "cold", "memory"]

US = 1e6


def _check_runs(before: int, expected: int, what: str) -> None:
    ran = ops.RUNS["inc"] - before
    if ran != expected:
        raise RuntimeError(f"{what}: the op body ran {ran} times, expected {expected}")


def _fresh_warm_rep(cfg: Config) -> dict[str, float]:
    n, nj = cfg.n, cfg.joblib_n
    out: dict[str, float] = {}
    with temp_dir() as d:
        # mandala: N fresh calls, commit at block exit included; then the same N calls again.
        storage = Storage(d / "mandala.db")
        runs = ops.RUNS["inc"]
        inc = ops.inc
        settle()
        start = clock()
        with storage:
            for i in range(n):
                inc(i)
            loop_end = clock()
        end = clock()
        _check_runs(runs, n, "fresh calls")
        out["fresh"] = (end - start) / n * US
        out["fresh_commit"] = (end - loop_end) / n * US
        settle()
        start = clock()
        with storage:
            for i in range(n):
                inc(i)
        out["warm"] = (clock() - start) / n * US
        _check_runs(runs, n, "warm hits")
        storage.close()

        # raw sqlite floor: the same calls, one transaction.
        raw = RawSqliteMemo(d / "raw.db", ops.inc_plain)
        settle()
        start = clock()
        for i in range(n):
            raw(i)
        raw.commit()
        out["raw_fresh"] = (clock() - start) / n * US
        settle()
        start = clock()
        for i in range(n):
            raw(i)
        out["raw_hit"] = (clock() - start) / n * US
        raw.close()

        # dict floor
        memo = DictMemo(ops.inc_plain)
        for i in range(n):
            memo(i)
        settle()
        start = clock()
        for i in range(n):
            memo(i)
        out["dict_hit"] = (clock() - start) / n * US

        # joblib.Memory (fewer calls: it costs about a millisecond each)
        cached = joblib_memory(d / "joblib").cache(ops.inc_plain)
        settle()
        start = clock()
        for i in range(nj):
            cached(i)
        out["joblib_fresh"] = (clock() - start) / nj * US
        settle()
        start = clock()
        for i in range(nj):
            cached(i)
        out["joblib_hit"] = (clock() - start) / nj * US
    return out


def fresh_and_warm(cfg: Config) -> tuple[list[Row], list[Row]]:
    s = repeat(cfg.reps, lambda rep: _fresh_warm_rep(cfg))
    fresh = [
        Row(
            "fresh",
            f"µs/call, {cfg.n} fresh calls + commit",
            s["fresh"],
            {"raw-sqlite": s["raw_fresh"], f"joblib(n={cfg.joblib_n})": s["joblib_fresh"]},
            Target("<=", 50),
        ),
        Row("fresh", "  of which commit, µs/call", s["fresh_commit"]),
    ]
    warm = [
        Row(
            "warm",
            f"µs/call, {cfg.n} hits, same Storage",
            s["warm"],
            {
                "raw-sqlite": s["raw_hit"],
                "dict": s["dict_hit"],
                f"joblib(n={cfg.joblib_n})": s["joblib_hit"],
            },
            Target("<=", 15),
        )
    ]
    return fresh, warm


def _build_call_stores(d: Path, cfg: Config) -> dict[str, str]:
    """A mandala store, a raw sqlite store and a joblib cache, each holding the calls."""
    storage = Storage(d / "mandala.db")
    with storage:
        for i in range(cfg.n):
            ops.inc(i)
    storage.close()
    raw = RawSqliteMemo(d / "raw.db", ops.inc_plain)
    for i in range(cfg.n):
        raw(i)
    raw.close()
    cached = joblib_memory(d / "joblib").cache(ops.inc_plain)
    for i in range(cfg.joblib_n):
        cached(i)
    return {"mandala": str(d / "mandala.db"), "raw": str(d / "raw.db"), "joblib": str(d / "joblib")}


def cold(cfg: Config) -> list[Row]:
    with temp_dir() as d:
        paths = _build_call_stores(d, cfg)

        def rep(_: int) -> dict[str, float]:
            out: dict[str, float] = {}
            m = run_child({"kind": "cold_mandala", "db": paths["mandala"], "n": cfg.n})
            if m["runs"] != 0:
                raise RuntimeError(f"cold hits: the op body ran {m['runs']} times in the child")
            out.update(open_ms=m["open_ms"], hit_us=m["hit_us"], import_ms=m["import_ms"])
            r = run_child({"kind": "cold_raw", "db": paths["raw"], "n": cfg.n})
            out.update(raw_open_ms=r["open_ms"], raw_hit_us=r["hit_us"])
            j = run_child({"kind": "cold_joblib", "dir": paths["joblib"], "n": cfg.joblib_n})
            out.update(joblib_open_ms=j["open_ms"], joblib_hit_us=j["hit_us"])
            return out

        s = repeat(cfg.reps, rep)
    return [
        Row(
            "cold",
            f"ms to open Storage ({cfg.n} calls stored)",
            s["open_ms"],
            {"raw-sqlite": s["raw_open_ms"], "joblib": s["joblib_open_ms"]},
            Target("<=", 50),
        ),
        Row(
            "cold",
            f"µs/call, {cfg.n} hits in a new process",
            s["hit_us"],
            {"raw-sqlite": s["raw_hit_us"], f"joblib(n={cfg.joblib_n})": s["joblib_hit_us"]},
            Target("<=", 40),
        ),
        Row("cold", "ms to import mandala.imports (info)", s["import_ms"]),
    ]


def _memory_rep(cfg: Config) -> dict[str, float]:
    n = cfg.n
    out: dict[str, float] = {}
    with temp_dir() as d:
        db = d / "mandala.db"
        storage = Storage(db)
        inc = ops.inc
        settle()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        with storage:
            for i in range(n):
                inc(i)  # results dropped
        gc.collect()
        held, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out["held"] = (held - base) / n
        out["peak"] = (peak - base) / n
        storage.close()  # commits and checkpoints the WAL into the file
        empty = Storage(d / "empty.db")
        empty.close()
        # marginal bytes: the schema's fixed pages would otherwise dominate small runs
        out["disk"] = (store_size(db) - store_size(d / "empty.db")) / n

        memo = DictMemo(ops.inc_plain)
        settle()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        for i in range(n):
            memo(i)
        gc.collect()
        out["dict_held"] = (tracemalloc.get_traced_memory()[0] - base) / n
        tracemalloc.stop()

        raw = RawSqliteMemo(d / "raw.db", ops.inc_plain)
        for i in range(n):
            raw(i)
        raw.close()
        RawSqliteMemo(d / "raw-empty.db", ops.inc_plain).close()
        out["raw_disk"] = (store_size(d / "raw.db") - store_size(d / "raw-empty.db")) / n

        cached = joblib_memory(d / "joblib").cache(ops.inc_plain)
        for i in range(cfg.joblib_n):
            cached(i)
        out["joblib_disk"] = (
            sum(p.stat().st_size for p in (d / "joblib").rglob("*") if p.is_file()) / cfg.joblib_n
        )
    return out


def memory(cfg: Config) -> list[Row]:
    s = repeat(cfg.reps, lambda rep: _memory_rep(cfg))
    return [
        Row(
            "memory",
            f"B/call held after {cfg.n} calls + commit",
            s["held"],
            {"dict-memo": s["dict_held"]},
            Target("<=", 500),
        ),
        Row("memory", "  peak during calls+commit, B/call", s["peak"]),
        Row(
            "memory",
            "disk B/call (.db+wal, closed, minus empty store)",
            s["disk"],
            {"raw-sqlite": s["raw_disk"], "joblib": s["joblib_disk"]},
            Target("<=", 600),
        ),
    ]
