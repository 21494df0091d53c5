#!/usr/bin/env python3
"""Minimal reproducers for the differences tools/upstream_notebooks.py finds.

Run: ``PYTHONPATH=/work/main python3 tools/upstream_nb_repros.py``. Each case prints what we
give and what the original (pymandala 0.2.0a0) gives, per the notebooks' saved outputs and
the reference notes.
"""

from __future__ import annotations

import builtins
import io
from contextlib import redirect_stdout
from unittest.mock import patch

from mandala.imports import Storage, op


def case(title: str, got, expected) -> None:
    mark = "same" if got == expected else "DIFFERS"
    print(f"[{mark}] {title}\n    ours:     {got!r}\n    original: {expected!r}")


def df_missing_values() -> None:
    @op(output_names=["y"])
    def increment(x):
        return x + 1

    @op(output_names=["w"])
    def add(y, z):
        return y + z

    with Storage() as storage:
        for x in range(5):
            y = increment(x)
            if x % 2 == 0:
                add(y=y, z=x)
    df = storage.cf(increment).expand_forward().df()
    case("df(): dtype of a value column with gaps", str(df["w"].dtype), "float64")
    case(
        "df(): missing value in it",
        sorted(map(repr, df["w"].tolist())),
        sorted(map(repr, [1.0, 5.0, 9.0, float("nan"), float("nan")])),
    )
    case("df(): dtype of a full int column", str(df["x"].dtype), "int64")


def df_half_rows() -> None:
    @op
    def train(n):
        return n * 10, n / 10

    @op
    def ev(m):
        return m + 1

    storage = Storage()
    with storage:
        for n in [1, 2, 3]:
            m, _ = train(n)
            if n > 1:
                ev(m)
    df = storage.cf(train).expand_all().df(include_calls=False)
    case("df(): one row per train call (multi-output, one output consumed)", len(df), 3)


def draw_returns() -> None:
    @op
    def inc(x):
        return x + 1

    storage = Storage()
    with storage:
        inc(1)
    out = storage.cf(inc).draw(verbose=True)
    case(
        "cf.draw(...) return value (shown by IPython as a cell's last line)",
        type(out).__name__,
        "NoneType",
    )


def cf_of_ref_keeps_value() -> None:
    @op
    def inc(x):
        return x + 1

    storage = Storage()
    with storage:
        y = inc(1)
    case(
        "storage.cf(ref).refs_by_var() keeps the in-memory ref",
        repr(storage.cf(y).refs_by_var()["v"]),
        repr({y}),
    )


def prompt_printed() -> None:
    storage = Storage(deps_path="__main__")
    src1 = "@op\ndef f(x):\n    return x + 1\n"
    src2 = "@op\ndef f(x):\n    return x + 2\n"
    ns = {"op": op, "__name__": "__main__"}
    import linecache
    import sys
    import types

    main = types.ModuleType("__main__")
    main.__dict__.update(ns)
    old_main = sys.modules["__main__"]
    sys.modules["__main__"] = main
    try:
        for i, src in enumerate((src1, src2)):
            fn = f"<repro-{i}>"
            linecache.cache[fn] = (len(src), None, src.splitlines(True), fn)
            exec(compile(src, fn, "exec"), main.__dict__)
            buf = io.StringIO()
            with patch.object(builtins, "input", lambda *a: "y"), redirect_stdout(buf), storage:
                main.__dict__["f"](1)
        text = buf.getvalue()
    finally:
        sys.modules["__main__"] = old_main
    case(
        "change prompt question printed (input() mocked)", "Does this change require" in text, True
    )
    case("'Dependent components:' listed", "Dependent components:" in text, True)


if __name__ == "__main__":
    for fn in (
        df_missing_values,
        df_half_rows,
        draw_returns,
        cf_of_ref_keeps_value,
        prompt_printed,
    ):
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            print(f"[ERROR] {fn.__name__}: {type(e).__name__}: {e}")
