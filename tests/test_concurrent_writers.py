"""Eight processes writing overlapping and identical calls into one store at once (every backend
with a persistent location: a SQLite file and a PostgreSQL database)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from mandala.imports import Storage, op

REPO_ROOT = Path(__file__).resolve().parent.parent
N_WORKERS = 8
N_ITEMS = 120

WORKER = r"""
import random, sys, time
from mandala.imports import Storage, op

location, seed, start_at = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])

@op
def work(i):
    return {"i": i, "payload": bytes([i % 251]) * 500}

@op
def pair(a, b):
    return a["i"] * 1000 + b["i"]

order = list(range(N_ITEMS))
random.Random(seed).shuffle(order)
storage = Storage(location)
while time.time() < start_at:
    time.sleep(0.001)
with storage:
    for n, i in enumerate(order):
        pair(work(i), work((i + 1) % N_ITEMS))
        if n % 7 == 6:
            storage.commit()
print("DONE", flush=True)
""".replace("N_ITEMS", str(N_ITEMS))


_RUNS: list[int] = []


@op
def work(i):
    _RUNS.append(i)  # the same op as the workers' (same name and result); counts executions here
    return {"i": i, "payload": bytes([i % 251]) * 500}


@op
def pair(a, b):
    _RUNS.append(-1)
    return a["i"] * 1000 + b["i"]


def test_eight_writers_store_every_call_exactly_once(persistent) -> None:
    Storage(persistent.location).close()  # the schema exists before the race, as after a first run
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    start_at = time.time() + 2.0
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, persistent.location, str(seed), str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for seed in range(N_WORKERS)
    ]
    outputs = [worker.communicate(timeout=120)[0] for worker in workers]
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-3000:]
        assert "DONE" in output and "Traceback" not in output, output[-3000:]
    reader = persistent.open()
    stats = reader.cache_stats()
    assert stats["calls"]["stored"] == 2 * N_ITEMS  # each work(i) and pair(i) exactly once
    runs_before = len(_RUNS)
    with reader:
        results = [pair(work(i), work((i + 1) % N_ITEMS)) for i in range(N_ITEMS)]
    assert len(_RUNS) == runs_before  # everything was found: nothing recomputed
    assert reader.unwrap(results) == [i * 1000 + (i + 1) % N_ITEMS for i in range(N_ITEMS)]
