"""The command line: ``python3 -m bench [--quick] [--only NAME] [--sizes ...] [--json PATH]``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from bench.config import Config
from bench.report import Row, format_table, write_json

__all__ = ["main", "WORKLOADS"]

WORKLOADS = (
    "fresh",
    "warm",
    "cold",
    "scaling",
    "memory",
    "array",
    "frames",
    "postgres",
    "writers",
    "durability",
    "versioning",
    "parallel",
)


def _parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--sizes wants integers like 1000,10000; got {text!r}"
        ) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--sizes wants positive integers; got {text!r}")
    return sizes


def _parse_only(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in WORKLOADS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown workload {unknown[0]!r}; choose from {', '.join(WORKLOADS)}"
        )
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m bench",
        description="Benchmark mandala against baselines measured in the same run; prints "
        "medians. Workloads: " + ", ".join(WORKLOADS) + ".",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--only", type=_parse_only, metavar="NAME[,NAME]", help="run only these workloads"
    )
    parser.add_argument(
        "--sizes",
        type=_parse_sizes,
        metavar="N,N,...",
        help="store sizes (calls) for the scaling and frames workloads "
        "(default 1000,10000,100000,1000000)",
    )
    parser.add_argument("--n", type=int, help="calls per run for fresh/warm/cold/memory")
    parser.add_argument("--reps", type=int, help="runs per figure (median taken)")
    parser.add_argument("--array-mb", type=float, help="size of the big array in MB")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    return parser


def make_config(args: argparse.Namespace) -> Config:
    cfg = Config.quick_config() if args.quick else Config()
    if args.sizes:
        cfg.sizes = args.sizes
    if args.n:
        cfg.n = args.n
        cfg.joblib_n = min(cfg.joblib_n, args.n)
    if args.reps:
        cfg.reps = args.reps
    if args.array_mb:
        cfg.array_mb = args.array_mb
    return cfg


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = make_config(args)
    selected = args.only or list(WORKLOADS)

    # imported here so that --help works even when mandala cannot be imported
    from bench import array, frames, scaling, shared, versioning, workloads

    rows: list[Row] = []
    started = time.perf_counter()

    def run(name: str, body: Callable[[], list[Row]]) -> None:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        begin = time.perf_counter()
        rows.extend(body())
        print(
            f"[bench] {name} done in {time.perf_counter() - begin:.1f} s",
            file=sys.stderr,
            flush=True,
        )

    if "fresh" in selected or "warm" in selected:
        label = "+".join(name for name in ("fresh", "warm") if name in selected)

        def fresh_warm() -> list[Row]:
            fresh, warm = workloads.fresh_and_warm(cfg)
            return (fresh if "fresh" in selected else []) + (warm if "warm" in selected else [])

        run(label, fresh_warm)
    if "cold" in selected:
        run("cold", lambda: workloads.cold(cfg))
    if "scaling" in selected:
        run("scaling", lambda: scaling.scaling(cfg))
    if "memory" in selected:
        run("memory", lambda: workloads.memory(cfg))
    if "array" in selected:
        run("array", lambda: array.big_array(cfg))
    if "frames" in selected:
        run("frames", lambda: frames.frames(cfg))
    if "versioning" in selected:
        run("versioning", lambda: versioning.versioning(cfg))
    for name, body in (
        ("postgres", shared.postgres),
        ("writers", shared.writers),
        ("durability", shared.durability),
    ):
        if name in selected:
            run(name, lambda body=body: body(cfg))  # type: ignore[misc]
    if "parallel" in selected:
        from bench import parallel  # imports numpy and Dask only when selected

        run("parallel", lambda: parallel.parallel(cfg))

    seconds = time.perf_counter() - started
    print(
        f"mandala benchmarks: medians of {cfg.reps} runs (N={cfg.n}, joblib N={cfg.joblib_n}); "
        f"ratio = mandala / first baseline; {seconds:.0f} s"
    )
    print(format_table(rows))
    failed = [row for row in rows if row.result == "FAIL"]
    print(
        f"\n{len(failed)} of {sum(1 for r in rows if r.target)} targets failed"
        + (": " + "; ".join(f"{r.workload} / {r.metric.strip()}" for r in failed) if failed else "")
    )
    if args.json:
        write_json(args.json, rows, cfg.as_dict(), seconds)
    return 0
