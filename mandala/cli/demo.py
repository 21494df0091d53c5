"""The demo behind ``python -m mandala demo``: a small experiment pipeline on a SQLite file.

It fits ridge regressions to synthetic datasets over a grid of seeds and regularization
strengths, twice: the first pass computes (unless the file already holds the results), the
second pass, on a freshly opened store, computes nothing and loads the results back. Then it
queries the store with a computation frame: the history of every ``evaluate`` call, as a graph,
as a table, and (when graphviz ``dot`` is installed) as a picture next to the store file.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from mandala.engine.op import op
from mandala.errors import MandalaError
from mandala.model.refs import Ref
from mandala.storage import Storage

if TYPE_CHECKING:
    from mandala.frames.frame import ComputationFrame

__all__ = ["DemoPathError", "run_demo"]

EXECUTIONS: dict[str, int] = {"make_data": 0, "fit": 0, "evaluate": 0}


@op(output_names=["X_train", "y_train", "X_test", "y_test"])
def make_data(
    seed: int, n_samples: int = 2000, n_features: int = 20
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A noisy linear regression problem, split in halves for training and testing."""
    EXECUTIONS["make_data"] += 1
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, n_features))
    true_weights = rng.normal(size=n_features)
    y = X @ true_weights + rng.normal(scale=2.0, size=n_samples)
    half = n_samples // 2
    return X[:half], y[:half], X[half:], y[half:]


@op(output_names=["weights"])
def fit(X: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """Ridge regression in closed form."""
    EXECUTIONS["fit"] += 1
    time.sleep(0.02)  # stands for a real training cost
    gram = X.T @ X + alpha * np.eye(X.shape[1])
    return np.linalg.solve(gram, X.T @ y)


@op(output_names=["mse"])
def evaluate(weights: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
    """Mean squared error of a model on a dataset."""
    EXECUTIONS["evaluate"] += 1
    return float(np.mean((X @ weights - y) ** 2))


def pipeline(
    storage: Storage, seeds: list[int], alphas: list[float]
) -> list[tuple[int, float, Ref]]:
    results: list[tuple[int, float, Ref]] = []
    with storage:
        for seed in seeds:
            X, y, X_test, y_test = make_data(seed)
            for alpha in alphas:
                weights = fit(X, y, alpha)
                results.append((seed, alpha, evaluate(weights, X_test, y_test)))
    return results


DEMO_MARK = "mandala_demo"
"""Key of the ``meta`` row by which a store file says the demo created it (its value lists the
files the demo made beside it), so that a reset removes nothing it did not make."""

_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


class DemoPathError(MandalaError, ValueError):
    """The demo was pointed at a file it did not create; it never writes into or removes it."""


def _demo_record(db: Path) -> dict[str, bool] | None:
    """What the demo made at ``db`` (``{"blobs": ..., "picture": ...}``), or None if not the demo's.

    Read through a read-only connection, so that looking never creates or changes a file.
    """
    if not db.is_file():
        return None
    try:
        connection = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
        try:
            row = connection.execute(
                "SELECT value FROM meta WHERE key = ?", (DEMO_MARK,)
            ).fetchone()
        finally:
            connection.close()
    except sqlite3.Error:
        return None
    if row is None:
        return None
    try:
        made = json.loads(row[0])
    except (TypeError, ValueError):
        return None
    return {"blobs": bool(made.get("blobs")), "picture": bool(made.get("picture"))}


def _write_demo_record(db: Path, made: dict[str, bool]) -> None:
    connection = sqlite3.connect(str(db), timeout=30)
    try:
        with connection:
            connection.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (DEMO_MARK, json.dumps(made, sort_keys=True)),
            )
    finally:
        connection.close()


def _blob_folder(db: Path) -> Path:
    return db.with_name(db.name + ".blobs")


def _picture(db: Path) -> Path:
    return db.with_name(db.name + ".svg")


def _remove_blob_folder(folder: Path) -> None:
    """Remove the blob files of a demo store: two-character folders of blob files, nothing else.

    Anything else found there (a file a user put in the folder) stays, and so do the folders
    that hold it.
    """
    if not folder.is_dir():
        return
    for shard in folder.iterdir():
        if not (shard.is_dir() and len(shard.name) == 2):
            continue
        for blob in shard.iterdir():
            if blob.is_file() and not blob.is_symlink():
                blob.unlink()
        with contextlib.suppress(OSError):
            shard.rmdir()
    with contextlib.suppress(OSError):
        folder.rmdir()


def _reset(db: Path) -> None:
    """Remove a demo store made by an earlier run, and only what that run created."""
    made = _demo_record(db)
    if made is None:
        return
    if made["blobs"]:
        _remove_blob_folder(_blob_folder(db))
    if made["picture"] and _picture(db).is_file():
        _picture(db).unlink()
    for suffix in _SQLITE_SIDE_FILES:
        side = db.with_name(db.name + suffix)
        if side.is_file():
            side.unlink()
    db.unlink()


def run_demo(path: str, reset: bool, echo: Callable[[str], None] = print) -> dict[str, int]:
    """Run the demo on the store at ``path``; returns the executions of the second pass.

    The demo writes only into a store it created itself (marked in the store's ``meta`` table):
    a file at ``path`` that the demo did not make is never written to or removed.

    Raises:
        DemoPathError: ``path`` exists and was not created by the demo.
    """
    db = Path(path)
    if (db.exists() or db.is_symlink()) and _demo_record(db) is None:
        raise DemoPathError(
            f"mandala demo: {db} already exists and was not created by the demo, which leaves it "
            "untouched; pass another path with --db (for example --db mandala_demo.db)"
        )
    if reset:
        _reset(db)
    made = _demo_record(db) or {
        "blobs": not _blob_folder(db).exists(),
        "picture": not _picture(db).exists(),
    }
    Storage(db_path=str(db)).close()
    _write_demo_record(db, made)
    seeds, alphas = [0, 1, 2], [0.01, 0.1, 1.0, 10.0]
    echo(
        f"mandala demo: ridge regression over {len(seeds)} seeds x {len(alphas)} alphas, stored in {db}"
    )

    for label in ("first pass", "second pass (a new Storage on the same file)"):
        for name in EXECUTIONS:
            EXECUTIONS[name] = 0
        storage = Storage(db_path=str(db))
        start = time.perf_counter()
        results = pipeline(storage, seeds, alphas)
        elapsed = time.perf_counter() - start
        computed = ", ".join(f"{name} x{count}" for name, count in EXECUTIONS.items())
        echo(f"\n{label}: {elapsed * 1000:.0f} ms; executed: {computed}")
        if sum(EXECUTIONS.values()) == 0:
            echo("  nothing was computed: every call was found in the store")
        executions = dict(EXECUTIONS)

    echo("\nresults loaded back from the store:")
    echo(f"  {'seed':>4}  {'alpha':>6}  {'test mse':>9}")
    for seed, alpha, mse_ref in results:
        echo(f"  {seed:>4}  {alpha:>6}  {storage.unwrap(mse_ref):>9.4f}")
    example = results[0][2]
    creator = storage.get_ref_creator(example)
    if creator is not None:
        echo(f"\nprovenance of the first result: {creator} with inputs {sorted(creator.inputs)}")
    show_frame(storage, db, echo, draw=made["picture"])
    storage.close()
    return executions


def show_frame(storage: Storage, db: Path, echo: Callable[[str], None], draw: bool = True) -> None:
    """Print the frame of every evaluation (graph, then table) and draw it if ``dot`` exists.

    ``draw=False`` when a file the demo did not make is in the picture's place: it is kept.
    """
    # expand_back is typed "frame or None" (None with inplace=True)
    cf = cast("ComputationFrame", storage.cf(evaluate).expand_back(recursive=True))
    echo("\ncomputation frame: storage.cf(evaluate).expand_back(recursive=True)")
    echo("  " + repr(cf).replace("\n", "\n  "))
    table = cf.df(include_calls=False)[["seed", "alpha", "mse"]]
    table = table.sort_values(["seed", "alpha"], ignore_index=True)
    echo(f"\ncf.df(include_calls=False): {len(table)} rows; seed, alpha and mse of the first 5:")
    echo("  " + table.head().to_string(index=False).replace("\n", "\n  "))
    picture = _picture(db)
    if not draw:
        echo(f"\n({picture} exists and was not made by the demo: no picture drawn)")
        return
    if shutil.which("dot") is None:
        echo("\n(graphviz `dot` is not installed: no picture of the frame)")
        return
    try:
        cf.draw(path=str(picture))
    except (ImportError, RuntimeError, OSError) as error:
        echo(f"\n(could not draw the frame: {error})")
        return
    echo(f"\nthe frame drawn with graphviz: {picture}")
