"""Executors for the parallel tests: a real Dask LocalCluster (2 worker processes), a real local
Ray instance (2 CPUs) and a real process pool, plus a log file that counts executions across
processes."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def process_pool() -> Iterator[concurrent.futures.ProcessPoolExecutor]:
    """A pool of 2 worker processes."""
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        yield pool


@pytest.fixture(params=["process_pool", "dask", "ray"])
def executor(request: pytest.FixtureRequest) -> Any:
    """Each supported kind of executor: a process pool, a Dask client, the ray module."""
    if request.param == "dask":
        return request.getfixturevalue("dask_client")
    if request.param == "ray":
        return request.getfixturevalue("ray_module")
    return request.getfixturevalue("process_pool")


@pytest.fixture
def log(tmp_path: Path) -> str:
    """A file the test ops append one line to per real execution (see ops_for_workers)."""
    return str(tmp_path / "executions.log")
