"""cProfile of one hot path: ``python3 -m bench.profile WHAT [--n N] [--top K]``.

WHAT is ``fresh`` (N fresh calls + commit), ``warm`` (N warm hits), ``cold`` (N hits through a
new Storage on a store of N calls), ``fresh-at SIZE`` / ``cold-at SIZE`` (N fresh calls, or N
hits on random stored calls, in a new Storage on a store of SIZE calls; ``--store PATH`` keeps
that store for the next run), ``array-store``, ``array-hit`` or ``array-read`` (with
--array-mb). Only the measured section runs under the profiler; the table lists functions by own
time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
from collections.abc import Callable
from pathlib import Path

from bench import ops
from bench.measure import copy_store, temp_dir
from mandala.imports import Storage


def _fill(db: Path, count: int, first: int = 0) -> None:
    storage = Storage(db)
    for start in range(first, first + count, 50_000):
        with storage:
            for i in range(start, min(first + count, start + 50_000)):
                ops.inc(i)
    storage.close()


def _profile(section: Callable[[], object], top: int, sort: str) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    section()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats(sort).print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python3 -m bench.profile")
    parser.add_argument(
        "what",
        choices=[
            "fresh",
            "warm",
            "cold",
            "fresh-at",
            "cold-at",
            "array-store",
            "array-hit",
            "array-read",
        ],
    )
    parser.add_argument("size", nargs="?", type=int, default=100_000)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--array-mb", type=float, default=100.0)
    parser.add_argument(
        "--store", type=Path, help="store of SIZE calls to reuse (built if missing)"
    )
    args = parser.parse_args(argv)
    n = args.n
    inc = ops.inc

    with temp_dir() as d:
        db = d / "m.db"
        if args.what == "fresh":
            storage = Storage(db)

            def section() -> None:
                with storage:
                    for i in range(n):
                        inc(i)
        elif args.what in ("warm", "cold"):
            _fill(db, n)
            storage = Storage(db)
            if args.what == "warm":
                with storage:
                    for i in range(n):
                        inc(i)

            def section() -> None:
                with storage:
                    for i in range(n):
                        inc(i)
        elif args.what in ("fresh-at", "cold-at"):
            if args.store is None:
                _fill(db, args.size)
            else:
                if not args.store.exists():
                    _fill(args.store, args.size)
                copy_store(args.store, db)
            storage = Storage(db)
            if args.what == "fresh-at":
                args_of_calls = range(args.size, args.size + n)
            else:
                args_of_calls = random.Random(0).sample(range(args.size), min(n, args.size))

            def section() -> None:
                with storage:
                    for i in args_of_calls:
                        inc(i)
        else:
            import numpy as np

            array = np.random.default_rng(0).random(int(args.array_mb * 1e6) // 8)
            storage = Storage(db)
            if args.what == "array-store":

                def section() -> None:
                    with storage:
                        ops.scale(array)
            else:
                with storage:
                    hid = ops.scale(array).hid
                if args.what == "array-hit":

                    def section() -> None:
                        with storage:
                            ops.scale(array)
                else:
                    storage.close()
                    storage = Storage(db)
                    ref = storage.load_ref(hid, in_memory=False)

                    def section() -> None:
                        storage.unwrap(ref)

        print(_profile(section, args.top, args.sort))
        storage.close()


if __name__ == "__main__":
    main()
