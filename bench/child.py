"""What the benchmark's child processes run: ``python3 -m bench.child '<task JSON>'``.

Each task measures inside a fresh interpreter (cold caches, clean memory accounting) and prints
one line of JSON. Imports are timed apart from the measured sections.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

clock = time.perf_counter


def cold_mandala(task: dict[str, Any]) -> dict[str, Any]:
    start = clock()
    from bench import ops
    from mandala.imports import Storage

    import_ms = (clock() - start) * 1e3
    start = clock()
    storage = Storage(task["db"])
    open_ms = (clock() - start) * 1e3
    inc = ops.inc
    n = task["n"]
    start = clock()
    with storage:
        for i in range(n):
            inc(i)
    hit_us = (clock() - start) / n * 1e6
    return {"import_ms": import_ms, "open_ms": open_ms, "hit_us": hit_us, "runs": ops.RUNS["inc"]}


def cold_raw(task: dict[str, Any]) -> dict[str, Any]:
    from bench import ops
    from bench.baselines import RawSqliteMemo

    start = clock()
    memo = RawSqliteMemo(task["db"], ops.inc_plain)
    open_ms = (clock() - start) * 1e3
    n = task["n"]
    start = clock()
    for i in range(n):
        memo(i)
    hit_us = (clock() - start) / n * 1e6
    if memo.pending:
        raise RuntimeError("raw sqlite cold hits missed")
    return {"open_ms": open_ms, "hit_us": hit_us}


def cold_joblib(task: dict[str, Any]) -> dict[str, Any]:
    from bench import ops
    from bench.baselines import joblib_memory

    start = clock()
    cached = joblib_memory(task["dir"]).cache(ops.inc_plain)
    open_ms = (clock() - start) * 1e3
    n = task["n"]
    start = clock()
    for i in range(n):
        cached(i)
    hit_us = (clock() - start) / n * 1e6
    return {"open_ms": open_ms, "hit_us": hit_us}


def _input_array(task: dict[str, Any]) -> Any:
    import numpy as np

    count = int(task["nbytes"]) // 8
    return np.random.default_rng(task.get("seed", 0)).random(count)


def _memory_of(action: Any) -> dict[str, Any]:
    """Peak extra memory of ``action()``: tracemalloc (Python + numpy) and RSS (everything)."""
    import gc
    import tracemalloc

    import numpy  # noqa: F401 - imported before measuring: its import is not the action's memory

    from bench.measure import peak_rss_bytes, reset_peak_rss, rss_bytes

    gc.collect()
    rss_before = rss_bytes()
    reset = reset_peak_rss()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    start = clock()
    result = action()
    seconds = clock() - start
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    rss_peak = peak_rss_bytes() - rss_before if reset else None
    return {"result": result, "seconds": seconds, "traced_peak": peak, "rss_peak": rss_peak}


def array_store(task: dict[str, Any]) -> dict[str, Any]:
    """First call of ``scale`` on a new store: peak memory while computing and storing."""
    from bench import ops
    from mandala.imports import Storage

    array = _input_array(task)
    storage = Storage(task["db"])

    def action() -> str:
        with storage:
            out = ops.scale(array)
        return out.hid

    measured = _memory_of(action)
    storage.close()
    if ops.RUNS["scale"] != 1:
        raise RuntimeError("array store: scale did not run exactly once")
    hid = measured.pop("result")
    return {**measured, "hid": hid}


def array_read(task: dict[str, Any]) -> dict[str, Any]:
    """Unwrap the stored output in a new Storage: peak memory while reading it back."""
    from mandala.imports import Storage

    storage = Storage(task["db"])
    ref = storage.load_ref(task["hid"], in_memory=False)
    measured = _memory_of(lambda: storage.unwrap(ref))
    value = measured.pop("result")
    if value.nbytes != int(task["nbytes"]) // 8 * 8:
        raise RuntimeError("array read: wrong size read back")
    return measured


def array_npsave(task: dict[str, Any]) -> dict[str, Any]:
    """Baseline of array_store: compute the output and np.save both arrays (with fsync)."""
    from pathlib import Path

    from bench import ops
    from bench.baselines import np_save_synced

    array = _input_array(task)
    folder = Path(task["dir"])

    def action() -> None:
        out = ops.scale_plain(array)
        np_save_synced(folder / "in.npy", array)
        np_save_synced(folder / "out.npy", out)

    measured = _memory_of(action)
    measured.pop("result")
    return measured


def array_npload(task: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    measured = _memory_of(lambda: np.load(task["path"]))
    measured.pop("result")
    return measured


TASKS = {
    f.__name__: f
    for f in (
        cold_mandala,
        cold_raw,
        cold_joblib,
        array_store,
        array_read,
        array_npsave,
        array_npload,
    )
}


def main() -> None:
    task = json.loads(sys.argv[1])
    result = TASKS[task["kind"]](task)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
