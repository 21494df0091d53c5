"""Shared-store workloads: PostgreSQL on loopback, concurrent writers, per-call durability.

- ``postgres``: fresh calls/s (commit included), warm hits/s (same Storage) and cold hits/s (a
  new Storage, empty cache: one round trip per call) against PostgreSQL; baselines in the same
  run: plain psycopg ``executemany`` of the equivalent rows (one value, one call and two edge
  rows per call) in one transaction, a dict memoizer, and one plain ``SELECT`` per key.
- ``writers``: aggregate calls/s of 8 writer processes (distinct calls, a commit every
  ``_COMMIT_EVERY`` calls) into one SQLite file and one PostgreSQL schema, vs 1 writer.
- ``durability``: µs per fresh call with ``durable=True`` (a transaction per call) vs the default
  (one commit at block exit), on a SQLite file and on PostgreSQL.

PostgreSQL comes from ``MANDALA_BENCH_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``); the workloads create a database of their own
and drop it afterwards. Without a reachable server they print one "skipped" row each.

``python3 -m bench.shared TASK_JSON`` is the writer process of the ``writers`` workload.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from bench import ops
from bench.baselines import DictMemo
from bench.config import Config
from bench.measure import ROOT, clock, repeat, settle, temp_dir
from bench.report import Row, Target

__all__ = ["postgres", "writers", "durability", "BENCH_URL"]

BENCH_URL = os.environ.get(
    "MANDALA_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
_N_WRITERS = 8
_COMMIT_EVERY = 500


# ---------------------------------------------------------------------------- PostgreSQL


class _Database:
    """A database of this run on the benchmark server; each store gets a fresh schema in it."""

    def __init__(self, url: str) -> None:
        self.url = url

    def fresh_schema(self) -> str:
        """The URL of a new, empty schema (``search_path`` set through the URL's options)."""
        import psycopg

        schema = "b_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        return f"{self.url}?options=-csearch_path%3D{schema}"


@contextlib.contextmanager
def _database() -> Iterator[_Database]:
    import psycopg

    name = f"mandala_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(BENCH_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    base = BENCH_URL.rpartition("/")[0]
    try:
        yield _Database(f"{base}/{name}")
    finally:
        with psycopg.connect(BENCH_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _postgres_problem() -> str | None:
    """Why the PostgreSQL workloads cannot run, or None when they can."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'pymandala[postgres]')"
    from mandala.backends.postgres import redact_url

    try:
        with psycopg.connect(BENCH_URL, connect_timeout=5):
            pass
    except psycopg.Error as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return f"no PostgreSQL at {redact_url(BENCH_URL)} ({first}); set MANDALA_BENCH_POSTGRES_URL"
    return None


def _skipped(workload: str, problem: str) -> list[Row]:
    return [Row(workload, f"skipped: {problem}", [])]


def _check_runs(before: int, expected: int, what: str) -> None:
    ran = ops.RUNS["inc"] - before
    if ran != expected:
        raise RuntimeError(f"{what}: the op body ran {ran} times, expected {expected}")


def _time_calls(storage: Any, keys: range) -> float:
    """Seconds for ``inc(i)`` over ``keys`` in one block of ``storage`` (its commit included)."""
    inc = ops.inc
    settle()
    start = clock()
    with storage:
        for i in keys:
            inc(i)
    return clock() - start


_BASELINE_DDL = [
    "CREATE TABLE stored_values (content_key BYTEA PRIMARY KEY, format TEXT NOT NULL,"
    " size BIGINT NOT NULL, data BYTEA, checksum BYTEA)",
    "CREATE TABLE calls (call_id BIGINT PRIMARY KEY, history_key BYTEA NOT NULL UNIQUE,"
    " content_key BYTEA NOT NULL, op_id INTEGER NOT NULL, started_at DOUBLE PRECISION,"
    " duration DOUBLE PRECISION)",
    "CREATE INDEX calls_content ON calls (content_key)",
    "CREATE TABLE call_edges (call_id BIGINT NOT NULL, direction SMALLINT NOT NULL,"
    " name TEXT NOT NULL, ref_key BYTEA NOT NULL, content_key BYTEA NOT NULL,"
    " kind SMALLINT NOT NULL, PRIMARY KEY (call_id, direction, name))",
    "CREATE INDEX edges_ref ON call_edges (ref_key, direction)",
]


def _psycopg_baseline(url: str, n: int) -> dict[str, float]:
    """Calls/s of inserting the rows of ``n`` calls with executemany in one transaction, then
    lookups/s of one ``SELECT`` per call key (the floor of a cold hit)."""
    import psycopg

    rows_values, rows_calls, rows_edges = [], [], []
    for i in range(n):
        key, value, ref = os.urandom(16), os.urandom(16), os.urandom(16)
        rows_values.append((value, "builtin", 9, b"\x00" * 9, os.urandom(16)))
        rows_calls.append((i + 1, key, os.urandom(16), 1, time.time(), 1e-6))
        rows_edges.append((i + 1, 0, "x", ref, os.urandom(16), 0))
        rows_edges.append((i + 1, 1, "output_0", os.urandom(16), value, 0))
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in _BASELINE_DDL:
            conn.execute(statement)
        settle()
        start = clock()
        with conn.transaction(), conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO stored_values VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                rows_values,
            )
            cursor.executemany("INSERT INTO calls VALUES (%s, %s, %s, %s, %s, %s)", rows_calls)
            cursor.executemany("INSERT INTO call_edges VALUES (%s, %s, %s, %s, %s, %s)", rows_edges)
        fresh = n / (clock() - start)
        keys = [row[1] for row in rows_calls]
        settle()
        start = clock()
        for key in keys:
            conn.execute(
                "SELECT e.name, e.ref_key, e.content_key, e.kind FROM calls c JOIN call_edges e"
                " ON e.call_id = c.call_id AND e.direction = 1 WHERE c.history_key = %s",
                (key,),
                prepare=True,
            ).fetchall()
        lookups = n / (clock() - start)
    return {"psycopg_fresh": fresh, "psycopg_lookup": lookups}


def _postgres_rep(db: _Database, n: int) -> dict[str, float]:
    from mandala.imports import Storage

    out: dict[str, float] = {}
    url = db.fresh_schema()
    storage = Storage(url)
    runs = ops.RUNS["inc"]
    out["fresh"] = n / _time_calls(storage, range(n))
    _check_runs(runs, n, "postgres fresh calls")
    out["warm"] = n / _time_calls(storage, range(n))
    storage.close()
    cold = Storage(url)
    out["cold"] = n / _time_calls(cold, range(n))
    cold.close()
    _check_runs(runs, n, "postgres hits")

    out.update(_psycopg_baseline(db.fresh_schema(), n))
    memo = DictMemo(ops.inc_plain)
    for i in range(n):
        memo(i)
    settle()
    start = clock()
    for i in range(n):
        memo(i)
    out["dict_hit"] = n / (clock() - start)
    return out


def postgres(cfg: Config) -> list[Row]:
    problem = _postgres_problem()
    if problem is not None:
        return _skipped("postgres", problem)
    n = cfg.n
    with _database() as db:
        s = repeat(cfg.reps, lambda rep: _postgres_rep(db, n))
    return [
        Row(
            "postgres",
            f"calls/s, {n} fresh calls + commit (loopback)",
            s["fresh"],
            {"psycopg-executemany": s["psycopg_fresh"]},
            Target(">=", 5_000),
        ),
        Row(
            "postgres",
            f"hits/s, {n} hits, same Storage (warm)",
            s["warm"],
            {"dict": s["dict_hit"]},
            Target(">=", 20_000),
        ),
        Row(
            "postgres",
            f"hits/s, {n} hits, new Storage (cold)",
            s["cold"],
            {"psycopg-select": s["psycopg_lookup"]},
        ),
    ]


# ---------------------------------------------------------------------------- writers


def _writer_child(task: dict[str, Any]) -> dict[str, float]:
    """One writer process: ``count`` distinct fresh calls, a commit every ``_COMMIT_EVERY``."""
    from mandala.imports import Storage

    storage = Storage(task["location"])
    first, count = task["first"], task["count"]
    inc = ops.inc
    while time.time() < task["start_at"]:
        time.sleep(0.001)
    start = time.time()
    with storage:
        for n, i in enumerate(range(first, first + count)):
            inc(i)
            if n % _COMMIT_EVERY == _COMMIT_EVERY - 1:
                storage.commit()
    end = time.time()
    storage.close()
    if ops.RUNS["inc"] != count:
        raise RuntimeError(f"writer ran the op {ops.RUNS['inc']} times, expected {count}")
    return {"start": start, "end": end}


def _run_writers(location: str, writers: int, count: int) -> float:
    """Aggregate calls/s of ``writers`` processes started together on one store."""
    from mandala.imports import Storage

    Storage(location).close()  # the schema exists before the race, as after a first run
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    start_at = time.time() + 1.0 + 0.1 * writers  # after every interpreter has started
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.shared",
                json.dumps(
                    {
                        "location": location,
                        "first": w * count,
                        "count": count,
                        "start_at": start_at,
                    }
                ),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(writers)
    ]
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=600)
        if process.returncode != 0:
            raise RuntimeError(f"writer process failed (exit {process.returncode}):\n{stderr}")
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    elapsed = max(r["end"] for r in results) - min(r["start"] for r in results)
    return writers * count / elapsed


def writers(cfg: Config) -> list[Row]:
    count = max(cfg.n // 4, 250)
    reps = min(cfg.reps, 3)
    problem = _postgres_problem()
    rows = []
    with temp_dir() as d:

        def sqlite_rep(rep: int) -> dict[str, float]:
            return {
                "one": _run_writers(str(d / f"one-{rep}.db"), 1, count),
                "many": _run_writers(str(d / f"many-{rep}.db"), _N_WRITERS, count),
            }

        s = repeat(reps, sqlite_rep)
    rows.append(
        Row(
            "writers",
            f"calls/s, {_N_WRITERS} writers x {count} calls, SQLite file",
            s["many"],
            {"1 writer": s["one"]},
        )
    )
    if problem is not None:
        return rows + _skipped("writers", problem)
    with _database() as db:
        s = repeat(
            reps,
            lambda rep: {
                "one": _run_writers(db.fresh_schema(), 1, count),
                "many": _run_writers(db.fresh_schema(), _N_WRITERS, count),
            },
        )
    rows.append(
        Row(
            "writers",
            f"calls/s, {_N_WRITERS} writers x {count} calls, PostgreSQL",
            s["many"],
            {"1 writer": s["one"]},
        )
    )
    return rows


# ---------------------------------------------------------------------------- durability


def _durability_rep(location: Callable[[str], str], n: int) -> dict[str, float]:
    from mandala.imports import Storage

    out = {}
    for durable in (False, True):
        storage = Storage(location(f"durable-{durable}"), durable=durable)
        runs = ops.RUNS["inc"]
        out[str(durable)] = _time_calls(storage, range(n)) / n * 1e6
        _check_runs(runs, n, f"durable={durable} fresh calls")
        storage.close()
    return out


def durability(cfg: Config) -> list[Row]:
    n = min(cfg.n, 2_000)
    rows = []
    with temp_dir() as d:
        s = repeat(
            cfg.reps,
            lambda rep: _durability_rep(lambda name: str(d / f"{name}-{rep}.db"), n),
        )
    rows.append(
        Row(
            "durability",
            f"µs/call durable=True, {n} fresh calls, SQLite file",
            s["True"],
            {"commit-at-exit": s["False"]},
        )
    )
    problem = _postgres_problem()
    if problem is not None:
        return rows + _skipped("durability", problem)
    n_pg = min(n, 1_000)
    with _database() as db:
        s = repeat(cfg.reps, lambda rep: _durability_rep(lambda name: db.fresh_schema(), n_pg))
    rows.append(
        Row(
            "durability",
            f"µs/call durable=True, {n_pg} fresh calls, PostgreSQL",
            s["True"],
            {"commit-at-exit": s["False"]},
        )
    )
    return rows


if __name__ == "__main__":
    print(json.dumps(_writer_child(json.loads(sys.argv[1]))))  # the parent reads it
