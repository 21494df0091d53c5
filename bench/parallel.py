"""Parallel blocks (``storage.parallel``): speed-up on sleeping calls, dispatch cost, big results.

- ``sleep``: ``_SLEEP_CALLS`` calls of an op that sleeps 50 ms, on a SQLite file store: serial
  (``with storage:``) vs a parallel block on a Dask LocalCluster of 2 worker processes vs one on
  a 2-process pool. The speed-ups are serial seconds / parallel seconds; the baselines are plain
  ``client.map`` / ``pool.map`` of the same function (no store), the ceiling on 2 workers.
- ``ray``: the same ``sleep`` calls in a block on a local Ray instance of 2 CPUs
  (``storage.parallel(ray)``), in seconds against the ideal (calls x 50 ms / 2 workers) and plain
  ``ray.get`` of one remote call per item (no store), and as a speed-up against the serial run
  above. Run after the Dask cluster is closed, so the two never share the cores. Without ray
  installed (``pip install -e '.[ray]'``) it prints a "skipped" row.
- ``dispatch``: microseconds per call of a block of trivial calls on the same Dask cluster vs a
  plain ``client.map`` + ``client.gather`` of the function in the same run; the ratio per run is
  the overhead of memoization (lookup, claims, recording, commits) on top of Dask's own.
- ``big results``: seconds per call for calls returning a ``_BIG_MB`` MB array on Dask: the
  block (result fetched once, hashed and written once to the blob folder) vs ``client.gather``
  and ``np.save`` of the same arrays, the floor of "bring it back once, write it once".

The op bodies live in this module so that the worker processes import them by name. Every
block's results are checked against the expected values and counts of stored calls.
"""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.config import Config
from bench.measure import clock, median, repeat, settle, temp_dir
from bench.report import Row, Target
from mandala.imports import Storage, op

__all__ = ["parallel"]

_SLEEP_S = 0.05
_SLEEP_CALLS = 400
_WORKERS = 2
_BIG_MB = 25
_BIG_CALLS = 4
US = 1e6


def nap_plain(i: int) -> int:
    time.sleep(_SLEEP_S)
    return i


@op
def nap(i: int) -> int:
    time.sleep(_SLEEP_S)
    return i


def inc_plain(x: int) -> int:
    return x + 1


@op
def inc(x: int) -> int:
    return x + 1


def big_plain(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random(_BIG_MB * 1_000_000 // 8)


@op
def big(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random(_BIG_MB * 1_000_000 // 8)


def _check(storage: Storage, refs: list[Any], expected: list[Any], calls: int, what: str) -> None:
    values = storage.unwrap(refs)
    if values != expected:
        raise RuntimeError(f"{what}: wrong results")
    stored = storage.backend.upkeep.counts().calls
    if stored != calls:
        raise RuntimeError(f"{what}: {stored} calls stored, expected {calls}")


def _block(storage: Storage, executor: Any, body: Any) -> tuple[float, Any]:
    settle()
    start = clock()
    with storage.parallel(executor, progress=False):
        refs = body()
    return clock() - start, refs


def _sleep_rep(d: Path, rep: int, n: int, client: Any, pool: Any, serial: bool) -> dict[str, float]:
    out: dict[str, float] = {}
    expected = list(range(n))
    if serial:
        storage = Storage(d / f"serial-{rep}.db")
        settle()
        start = clock()
        with storage:
            refs = [nap(i) for i in range(n)]
        out["serial"] = clock() - start
        _check(storage, refs, expected, n, "serial")
    for name, executor in (("dask", client), ("pool", pool)):
        storage = Storage(d / f"{name}-{rep}.db")
        out[name], refs = _block(storage, executor, lambda: [nap(i) for i in range(n)])
        _check(storage, refs, expected, n, f"{name} block")
    settle()
    start = clock()
    if client.gather(client.map(nap_plain, range(n), pure=False)) != expected:
        raise RuntimeError("client.map: wrong results")
    out["dask_plain"] = clock() - start
    settle()
    start = clock()
    if list(pool.map(nap_plain, range(n))) != expected:
        raise RuntimeError("pool.map: wrong results")
    out["pool_plain"] = clock() - start
    return out


def _dispatch_rep(d: Path, rep: int, n: int, client: Any) -> dict[str, float]:
    expected = [i + 1 for i in range(n)]
    settle()
    start = clock()
    if client.gather(client.map(inc_plain, range(n), pure=False)) != expected:
        raise RuntimeError("client.map: wrong results")
    plain = (clock() - start) / n * US
    storage = Storage(d / f"dispatch-{rep}.db")
    seconds, refs = _block(storage, client, lambda: [inc(i) for i in range(n)])
    _check(storage, refs, expected, n, "dispatch block")
    ours = seconds / n * US
    return {"ours": ours, "plain": plain, "ratio": ours / plain}


def _big_rep(d: Path, rep: int, client: Any) -> dict[str, float]:
    seeds = [rep * 100 + i for i in range(_BIG_CALLS)]
    settle()
    start = clock()
    arrays = client.gather(client.map(big_plain, seeds, pure=False))
    for seed, array in zip(seeds, arrays):
        np.save(d / f"plain-{seed}.npy", array)
    plain = (clock() - start) / _BIG_CALLS
    del arrays
    storage = Storage(d / f"big-{rep}.db")
    seconds, refs = _block(storage, client, lambda: [big(seed) for seed in seeds])
    if storage.backend.upkeep.counts().calls != _BIG_CALLS:
        raise RuntimeError("big results: calls missing from the store")
    if not np.array_equal(Storage(d / f"big-{rep}.db").unwrap(refs[0]), big_plain(seeds[0])):
        raise RuntimeError("big results: the stored array differs")
    return {"ours": seconds / _BIG_CALLS, "plain": plain}


def _ray_sleep_rep(d: Path, rep: int, n: int, ray: Any, remote_nap: Any) -> dict[str, float]:
    expected = list(range(n))
    storage = Storage(d / f"ray-{rep}.db")
    out: dict[str, float] = {}
    out["ray"], refs = _block(storage, ray, lambda: [nap(i) for i in range(n)])
    _check(storage, refs, expected, n, "ray block")
    settle()
    start = clock()
    if ray.get([remote_nap.remote(i) for i in range(n)]) != expected:
        raise RuntimeError("ray.get: wrong results")
    out["ray_plain"] = clock() - start
    return out


def _ray_rows(d: Path, n: int, reps: int, serial: float, label: str) -> list[Row]:
    """The ``ray`` figures (see the module docstring), on a Ray instance started here."""
    try:
        import ray
    except ImportError:
        return [Row("parallel", "skipped: Ray rows (ray is not installed)", [])]
    ray.init(num_cpus=_WORKERS, include_dashboard=False, log_to_driver=False)
    try:
        remote_nap = ray.remote(nap_plain)
        remote_inc = ray.remote(inc_plain)
        # warm up: both workers started and importing numpy, mandala and this module
        ray.get([remote_inc.remote(i) for i in range(20)])
        _block(Storage(d / "ray-warm.db"), ray, lambda: [inc(-i) for i in range(1, 20)])
        r = repeat(reps, lambda rep: _ray_sleep_rep(d, rep, n, ray, remote_nap))
    finally:
        ray.shutdown()
    ideal = n * _SLEEP_S / _WORKERS
    return [
        Row(
            "parallel",
            f"s, {label}, Ray {_WORKERS} workers (ideal = calls x {int(_SLEEP_S * 1000)} ms / "
            f"{_WORKERS})",
            r["ray"],
            {"ideal": [ideal], "ray.get": r["ray_plain"]},
            # the Dask and pool rows' target (a speed-up of 1.8 on 2 workers), in seconds
            Target("<=", round(ideal * _WORKERS / 1.8, 2)),
        ),
        Row(
            "parallel",
            f"speed-up vs serial, {label}, Ray {_WORKERS} workers",
            [serial / x for x in r["ray"]],
            {"ray.get": [serial / x for x in r["ray_plain"]]},
            Target(">=", 1.8),
        ),
    ]


def parallel(cfg: Config) -> list[Row]:
    from distributed import Client, LocalCluster

    n_sleep = 100 if cfg.quick else _SLEEP_CALLS
    n_dispatch = 300 if cfg.quick else 1_000
    reps = min(cfg.reps, 3)
    with temp_dir() as d:
        cluster = LocalCluster(
            n_workers=_WORKERS,
            processes=True,
            threads_per_worker=1,
            dashboard_address=None,
            local_directory=str(d / "dask"),
        )
        client = Client(cluster)
        try:
            with concurrent.futures.ProcessPoolExecutor(_WORKERS) as pool:
                # warm up: workers import numpy, mandala and this module once, before timing
                client.gather(client.map(inc_plain, range(20), pure=False))
                list(pool.map(inc_plain, range(20)))
                warm = Storage(d / "warm.db")
                _block(warm, client, lambda: [inc(-i) for i in range(1, 20)])
                _block(warm, pool, lambda: [inc(-i) for i in range(20, 40)])
                s = repeat(reps, lambda rep: _sleep_rep(d, rep, n_sleep, client, pool, rep < 2))
                t = repeat(cfg.reps, lambda rep: _dispatch_rep(d, rep, n_dispatch, client))
                b = repeat(reps, lambda rep: _big_rep(d, rep, client))
        finally:
            client.close()
            cluster.close()
        serial = median(s["serial"])
        label = f"{n_sleep} calls x {int(_SLEEP_S * 1000)} ms"
        ray_rows = _ray_rows(d, n_sleep, reps, serial, label)
    return [
        Row("parallel", f"s, {label}, serial `with storage:`", s["serial"]),
        Row(
            "parallel",
            f"speed-up vs serial, {label}, Dask {_WORKERS} workers",
            [serial / x for x in s["dask"]],
            {"client.map": [serial / x for x in s["dask_plain"]]},
            Target(">=", 1.8),
        ),
        Row(
            "parallel",
            f"speed-up vs serial, {label}, {_WORKERS}-process pool",
            [serial / x for x in s["pool"]],
            {"pool.map": [serial / x for x in s["pool_plain"]]},
            Target(">=", 1.8),
        ),
        *ray_rows,
        Row(
            "parallel",
            f"µs/call, {n_dispatch} trivial calls, Dask {_WORKERS} workers",
            t["ours"],
            {"client.map": t["plain"]},
        ),
        Row(
            "parallel",
            "dispatch cost / client.map's (same run)",
            t["ratio"],
            target=Target("<=", 1.5),
        ),
        Row(
            "parallel",
            f"s/call, {_BIG_CALLS} calls returning {_BIG_MB} MB arrays, Dask",
            b["ours"],
            {"gather+np.save": b["plain"]},
        ),
    ]
