"""Ctrl-C in a parallel block: what finished is committed, claims are released, a rerun computes
only the rest."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

from mandala.imports import Storage
from tests.parallel.ops_for_workers import executions, slow
from tests.parallel.test_claims_across_processes import claim_rows, result_of, start


def slow_inputs_stored(location: str) -> set[int]:
    storage = Storage(location)
    stored = set()
    for call in storage.cf(slow).calls_by_func()["slow"]:
        stored.add(storage.unwrap(call.inputs["x"]))
    return stored


def test_ctrl_c_keeps_what_finished_and_releases_claims(tmp_path: Path) -> None:
    location = str(tmp_path / "s.db")
    log = str(tmp_path / "runs.log")
    config = {"location": location, "log": log, "n": 12, "seconds": 0.4}
    process = start(config)
    deadline = time.monotonic() + 60
    while len([e for e in executions(log) if e.startswith("slow")]) < 6:
        assert time.monotonic() < deadline, "the block never got going"
        assert process.poll() is None, process.communicate()[1]
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0 and "KeyboardInterrupt" in stderr
    assert claim_rows(location) == []  # released: another process need not wait for a lease
    kept = slow_inputs_stored(location)
    assert kept, "calls that finished before Ctrl-C were not committed"
    result = result_of(start(config))
    assert result["values"] == [10 * i + 1 for i in range(12)]
    runs = Counter(int(line.split()[1]) for line in executions(log) if line.startswith("slow"))
    assert all(runs[i] == 1 for i in kept)  # what was committed never ran again
    assert set(runs) == set(range(12))
