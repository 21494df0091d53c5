"""A process that runs one parallel block on a shared store (for the cross-process tests).

``python3 -m tests.parallel.batch_process CONFIG_JSON`` runs, with an executor of its own::

    xs = [slow(i, seconds, log=log, gate=gate) for i in range(n)]
    ys = [add(x, 1, log=log) for x in xs]
    t = total(ys, log=log)

and prints ``{"values": [...], "total": ...}`` as JSON. With ``start_gate``, it first waits for
that file, so that two processes can be released at the same moment. The executor is a process
pool, a Dask LocalCluster (``"executor": "dask"``) or a Ray instance it connects to
(``"executor": "ray"``, ``"ray_address"``: e.g. the address of the tests' instance).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import sys
import time
from typing import Any

from mandala.imports import Storage
from tests.parallel import ops_for_workers as ops


def run(config: dict[str, Any]) -> dict[str, Any]:
    storage = Storage(config["location"])
    log, gate = config["log"], config.get("gate")
    start_gate = config.get("start_gate")
    if start_gate:
        while not os.path.exists(start_gate):
            time.sleep(0.01)
    if config.get("executor") == "dask":
        from distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        )
        executor: Any = Client(cluster)
    elif config.get("executor") == "ray":
        import ray

        cluster = None
        ray.init(address=config["ray_address"], log_to_driver=False)
        executor = ray
    else:
        cluster = None
        executor = concurrent.futures.ProcessPoolExecutor(2)
    try:
        with storage.parallel(executor, lease_s=config.get("lease_s", 60.0), progress=False):
            xs = [ops.slow(i, config["seconds"], log=log, gate=gate) for i in range(config["n"])]
            ys = [ops.add(x, 1, log=log) for x in xs]
            grand = ops.total(ys, log=log)
    finally:
        if cluster is not None:
            executor.close()
            cluster.close()
        else:
            executor.shutdown()  # the pool; for Ray, disconnects this driver only
    return {"values": storage.unwrap(ys), "total": storage.unwrap(grand)}


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))))
