"""One big float64 array: hashing, storing, memo hits, reading back, and the memory it takes.

Throughputs are in GB/s (10**9 bytes per second). The store rate counts the bytes mandala must
persist on the first call (the input array, which is a raw argument and so stored too, plus the
output) over the call's time minus the op body's own compute; the baseline writes the same two
arrays with np.save and fsync (mandala fsyncs its blob files). Peak memory is measured in fresh
child processes, both by tracemalloc (numpy reports its buffers to it) and by the kernel's peak
RSS, relative to the size of the array the step must materialize (the output when storing, the
array read when reading back).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from blake3 import blake3

from bench import ops
from bench.baselines import np_save_synced
from bench.config import Config
from bench.measure import clock, repeat, run_child, settle, temp_dir
from bench.report import Row, Target
from mandala.hashing.values import content_key
from mandala.imports import Storage

__all__ = ["big_array"]

GB = 1e9


def _blake3_floor(array: Any) -> bytes:
    return blake3(memoryview(array.reshape(-1).view(np.uint8)), max_threads=blake3.AUTO).digest(16)


def _in_process_rep(array: Any, folder: Path) -> dict[str, float]:
    import joblib

    nbytes = array.nbytes
    out: dict[str, float] = {}

    settle()
    start = clock()
    content_key(array)
    seconds = clock() - start
    out["hash_gbs"] = nbytes / seconds / GB
    start = clock()
    joblib.hash(array)
    joblib_seconds = clock() - start
    out["joblib_hash_gbs"] = nbytes / joblib_seconds / GB
    out["joblib_hash_ms"] = joblib_seconds * 1e3
    start = clock()
    _blake3_floor(array)
    blake3_seconds = clock() - start
    out["blake3_gbs"] = nbytes / blake3_seconds / GB
    out["blake3_ms"] = blake3_seconds * 1e3

    # first call: hash input, run, hash output, write both (blob files), commit
    db = folder / "mandala.db"
    storage = Storage(db)
    runs = ops.RUNS["scale"]
    settle()
    start = clock()
    with storage:
        result = ops.scale(array)
    total = clock() - start
    if ops.RUNS["scale"] != runs + 1:
        raise RuntimeError("array: the first call did not run the op")
    body = ops.LAST_BODY_S[0]
    out["first_ms"] = total * 1e3
    out["store_gbs"] = 2 * nbytes / (total - body) / GB
    hid = result.hid
    del result

    # memo hit, array passed again (it must be hashed again)
    settle()
    start = clock()
    with storage:
        again = ops.scale(array)
    out["hit_ms"] = (clock() - start) * 1e3
    if ops.RUNS["scale"] != runs + 1 or again.hid != hid:
        raise RuntimeError("array: the second call was not a memo hit")
    del again
    storage.close()

    # read back in a new Storage
    reader = Storage(db)
    ref = reader.load_ref(hid, in_memory=False)
    settle()
    start = clock()
    value = reader.unwrap(ref)
    out["read_gbs"] = nbytes / (clock() - start) / GB
    if value.shape != array.shape:
        raise RuntimeError("array: read back a wrong shape")
    del value, ref
    reader.close()

    # baselines: compute + np.save of both arrays (synced), np.load of the output
    settle()
    start = clock()
    computed = ops.scale_plain(array)
    compute = clock() - start
    np_save_synced(folder / "in.npy", array)
    np_save_synced(folder / "out.npy", computed)
    saved = clock() - start
    out["npsave_first_ms"] = saved * 1e3
    out["npsave_gbs"] = 2 * nbytes / (saved - compute) / GB
    del computed
    settle()
    start = clock()
    loaded = np.load(folder / "out.npy")
    out["npload_gbs"] = nbytes / (clock() - start) / GB
    del loaded
    return out


def _memory_rep(nbytes: int, folder: Path) -> dict[str, float]:
    out_bytes = nbytes // 8 * 8
    db = str(folder / "mandala.db")
    stored = run_child({"kind": "array_store", "db": db, "nbytes": nbytes})
    read = run_child({"kind": "array_read", "db": db, "nbytes": nbytes, "hid": stored["hid"]})
    saved = run_child({"kind": "array_npsave", "dir": str(folder), "nbytes": nbytes})
    loaded = run_child({"kind": "array_npload", "path": str(folder / "out.npy"), "nbytes": nbytes})
    result = {
        "store_traced": stored["traced_peak"] / out_bytes,
        "read_traced": read["traced_peak"] / out_bytes,
        "npsave_traced": saved["traced_peak"] / out_bytes,
        "npload_traced": loaded["traced_peak"] / out_bytes,
    }
    for name, got in (("store", stored), ("read", read), ("npsave", saved), ("npload", loaded)):
        if got["rss_peak"] is not None:
            result[f"{name}_rss"] = got["rss_peak"] / out_bytes
    return result


def big_array(cfg: Config) -> list[Row]:
    nbytes = int(cfg.array_mb * 1e6)
    array = np.random.default_rng(0).random(nbytes // 8)
    size = f"{cfg.array_mb:g} MB"

    def rep(_: int) -> dict[str, float]:
        with temp_dir() as folder:
            return _in_process_rep(array, folder)

    s = repeat(cfg.reps, rep)

    def mem_rep(_: int) -> dict[str, float]:
        with temp_dir() as folder:
            return _memory_rep(nbytes, folder)

    m = repeat(min(cfg.reps, 3), mem_rep)
    rows = [
        Row(
            "array",
            f"content_key GB/s ({size})",
            s["hash_gbs"],
            {"joblib.hash": s["joblib_hash_gbs"], "blake3-raw": s["blake3_gbs"]},
            Target(">=", 3),
        ),
        Row(
            "array",
            "first call: store GB/s (in+out, excl. compute)",
            s["store_gbs"],
            {"np.save+fsync": s["npsave_gbs"]},
            Target(">=", 1),
        ),
        Row(
            "array",
            "first call total ms (compute+commit)",
            s["first_ms"],
            {"compute+np.save": s["npsave_first_ms"]},
        ),
        Row(
            "array",
            "memo hit ms (array passed again)",
            s["hit_ms"],
            {"joblib.hash": s["joblib_hash_ms"], "blake3-raw": s["blake3_ms"]},
            Target("<=", 40),
        ),
        Row(
            "array",
            "read back GB/s (new Storage, unwrap)",
            s["read_gbs"],
            {"np.load": s["npload_gbs"]},
            Target(">=", 1),
        ),
        Row(
            "array",
            "store peak mem / output size (tracemalloc)",
            m["store_traced"],
            {"np.save": m["npsave_traced"]},
            Target("<=", 1.3),
        ),
        Row(
            "array",
            "read peak mem / data size (tracemalloc)",
            m["read_traced"],
            {"np.load": m["npload_traced"]},
            Target("<=", 1.3),
        ),
    ]
    if "store_rss" in m:
        rows += [
            Row(
                "array",
                "store peak mem / output size (RSS)",
                m["store_rss"],
                {"np.save": m["npsave_rss"]},
                Target("<=", 1.3),
            ),
            Row(
                "array",
                "read peak mem / data size (RSS)",
                m["read_rss"],
                {"np.load": m["npload_rss"]},
                Target("<=", 1.3),
            ),
        ]
    return rows
