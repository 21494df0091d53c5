"""Two processes running the same parallel block on one store compute each call once in total
(claims with a lease), and a process whose claimer died takes its calls over.

Each process is a real interpreter with its own executor (``batch_process.py``); executions are
counted through the log file that every execution appends to, whatever process runs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from mandala.imports import Storage
from tests.conftest import REPO_ROOT, PersistentStore
from tests.harness.kill import kill_9
from tests.harness.processes import child_env
from tests.parallel.ops_for_workers import executions

N = 8


def start(config: dict[str, Any], new_session: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.parallel.batch_process", json.dumps(config)],
        cwd=str(REPO_ROOT),
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=new_session,
    )


def result_of(process: subprocess.Popen[str], timeout: float = 180) -> dict[str, Any]:
    stdout, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stderr
    return json.loads(stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


EXPECTED = {"values": [10 * i + 1 for i in range(N)], "total": sum(10 * i + 1 for i in range(N))}


def claim_rows(location: str) -> list[tuple[str, float]]:
    backend = Storage(location).backend
    with backend.core.lock:
        rows = backend.core.execute("SELECT owner, lease_until FROM call_claims").fetchall()
    backend.close()
    return [(owner, lease_until) for owner, lease_until in rows]


def race(location: str, tmp_path: Path, executor: str) -> None:
    """Start two processes on the same block at the same moment; check nothing ran twice."""
    Storage(location).close()  # create the store before the processes race
    log, gate = str(tmp_path / "log"), tmp_path / "start"
    config = {
        "location": location,
        "log": log,
        "n": N,
        "seconds": 0.3,
        "start_gate": str(gate),
        "executor": executor,
    }
    processes = [start(config), start(config)]
    time.sleep(0.5 if executor == "process_pool" else 6.0)  # both interpreters are up
    gate.touch()
    results = [result_of(process) for process in processes]
    assert results == [EXPECTED, EXPECTED]
    assert calls_in(log) == EXPECTED_CALLS  # each call once, in one process or the other
    assert claim_rows(location) == []


def calls_in(log: str) -> Counter[str]:
    """How often each call ran (by op and first argument)."""
    return Counter(" ".join(line.split()[:2]) for line in executions(log))


EXPECTED_CALLS = Counter(
    [f"slow {i}" for i in range(N)] + [f"add {10 * i}" for i in range(N)] + [f"total {N}"]
)


def test_two_processes_running_the_same_block_compute_each_call_once(
    persistent: PersistentStore, tmp_path: Path
) -> None:
    race(persistent.location, tmp_path, "process_pool")


def test_two_processes_with_dask_clusters_compute_each_call_once(tmp_path: Path) -> None:
    race(str(tmp_path / "shared.db"), tmp_path, "dask")


def test_calls_of_a_claimer_that_died_are_taken_over_when_its_lease_expires(
    persistent: PersistentStore, tmp_path: Path
) -> None:
    Storage(persistent.location).close()
    gate = tmp_path / "gate"
    base = {"location": persistent.location, "n": N, "seconds": 0.0, "gate": str(gate)}
    first_log, second_log = str(tmp_path / "first.log"), str(tmp_path / "second.log")
    # The first process claims every call; its workers block at the gate.
    first = start({**base, "log": first_log, "lease_s": 2.0}, new_session=True)
    try:
        deadline = time.monotonic() + 60
        while len(executions(first_log)) < 2 or len(claim_rows(persistent.location)) < N:
            assert first.poll() is None, first.communicate()[1]
            assert time.monotonic() < deadline, "the first process never claimed its calls"
            time.sleep(0.05)
    finally:
        kill_9(first, group=True, timeout=None)  # the process and its pool workers
        first.communicate()
    rows = claim_rows(persistent.location)
    assert len(rows) >= N and len({owner for owner, _ in rows}) == 1
    assert any(lease_until > time.time() for _, lease_until in rows)  # still live leases

    gate.touch()
    second = start({**base, "log": second_log})
    assert result_of(second) == EXPECTED
    assert calls_in(second_log) == EXPECTED_CALLS  # it computed every call, once
    assert claim_rows(persistent.location) == []
