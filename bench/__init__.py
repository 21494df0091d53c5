"""The benchmark suite of mandala: ``python3 -m bench`` prints a table of medians.

Every figure is the median of several runs, and every baseline (joblib.Memory, a plain sqlite3
memoizer, a dict memoizer, np.save/np.load, joblib.hash) is measured in the same run, interleaved
with mandala's repetitions so both see the same machine noise. Stores live in temporary
directories that are removed afterwards.

Workloads (``--only NAME``; ``bench.cli.WORKLOADS`` is the list): the core ones (``fresh``,
``warm``, ``cold``, ``scaling``, ``memory``, ``array``), computation frames (``frames``), and the
shared store (``postgres``, ``writers``, ``durability``; they create and drop their own database
on ``MANDALA_BENCH_POSTGRES_URL``), and parallel blocks on Dask and a process pool (``parallel``,
which needs ``pip install -e '.[parallel]'``). Targets are those of the issues and of docs/design.md (Data model).

Modules: ``ops`` (the benchmarked functions, importable by child processes), ``measure``
(timers, temporary dirs, process memory), ``baselines`` (the non-mandala memoizers),
``workloads`` / ``scaling`` / ``array`` / ``frames`` / ``shared`` / ``parallel`` (the measurements), ``child`` (what subprocesses run),
``report`` (rows, table, JSON), ``cli`` (the command line), ``profile`` (cProfile of one hot path).
"""

__all__: list[str] = []
