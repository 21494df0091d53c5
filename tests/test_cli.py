"""The ``mandala`` command: ``demo`` and ``info``, and that every command is documented."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from mandala.cli.main import main

REPO_ROOT = Path(__file__).resolve().parent.parent


def _executions(text: str, label: str) -> dict[str, int]:
    line = next(line for line in text.splitlines() if line.startswith(label))
    return {name: int(count) for name, count in re.findall(r"(\w+) x(\d+)", line)}


def test_demo_computes_once_then_loads(tmp_path, snippet) -> None:
    db = tmp_path / "demo.db"
    first = snippet(f"from mandala.cli.main import main; main(['demo', '--db', {str(db)!r}])")
    assert _executions(first.stdout, "first pass") == {"make_data": 3, "fit": 12, "evaluate": 12}
    assert _executions(first.stdout, "second pass") == {"make_data": 0, "fit": 0, "evaluate": 0}
    assert "nothing was computed" in first.stdout
    again = snippet(
        f"from mandala.cli.main import main; main(['demo', '--db', {str(db)!r}, '--keep'])"
    )
    assert _executions(again.stdout, "first pass") == {"make_data": 0, "fit": 0, "evaluate": 0}
    reset = snippet(f"from mandala.cli.main import main; main(['demo', '--db', {str(db)!r}])")
    assert _executions(reset.stdout, "first pass") == {"make_data": 3, "fit": 12, "evaluate": 12}


def _results(text: str) -> dict[tuple[int, float], float]:
    """The (seed, alpha) -> mse table the demo prints after the two passes."""
    lines = text.split("results loaded back from the store:\n")[1].splitlines()[1:]
    found = {}
    for line in lines:
        parts = line.split()
        if len(parts) != 3:
            break
        found[(int(parts[0]), float(parts[1]))] = float(parts[2])
    return found


def test_demo_shows_the_frame_of_the_evaluations(tmp_path, snippet) -> None:
    import shutil

    db = tmp_path / "frame.db"
    out = snippet(f"from mandala.cli.main import main; main(['demo', '--db', {str(db)!r}])").stdout
    results = _results(out)
    assert len(results) == 12
    frame = out.split("computation frame: storage.cf(evaluate).expand_back(recursive=True)\n")[1]
    # the graph text: three function nodes, every call of the two passes
    assert "3 operation(s) (27 unique calls)" in frame
    graph = frame.split("Computational graph:\n")[1].split("\n\n")[0].splitlines()
    assert [line.split(" = ")[1].split("(")[0] for line in graph] == [
        "make_data",
        "fit",
        "evaluate",
    ]
    # the table: 12 rows, the first five shown, their mse as computed by the passes
    table = frame.split("cf.df(include_calls=False): 12 rows")[1].splitlines()[1:7]
    assert table[0].split() == ["seed", "alpha", "mse"]
    shown = [line.split() for line in table[1:]]
    assert len(shown) == 5
    for seed, alpha, mse in shown:
        assert round(float(mse), 4) == results[(int(seed), float(alpha))]
    assert [(int(s), float(a)) for s, a, _ in shown] == sorted(results)[:5]
    picture = tmp_path / "frame.db.svg"
    if shutil.which("dot"):
        assert f"the frame drawn with graphviz: {picture}" in out
        assert "<svg" in picture.read_text()
        assert "evaluate" in picture.read_text()
    else:
        assert "graphviz `dot` is not installed" in out
        assert not picture.exists()


def test_python_dash_m_mandala_demo(tmp_path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "mandala", "demo", "--db", str(tmp_path / "m.db")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "results loaded back from the store" in result.stdout


def test_info_prints_the_counts(tmp_path, capsys) -> None:
    from mandala.imports import Storage, op

    @op
    def inc(x):
        return x + 1

    db = tmp_path / "info.db"
    with Storage(db):
        inc(1)
        inc(2)
    assert main(["info", str(db)]) == 0
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()[2:]}
    assert rows["calls"][-1] == "2"
    assert rows["values"][-1] == "3"


def test_no_command_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def _commands() -> list[str]:
    parser_commands: list[str] = []
    original = argparse.ArgumentParser.parse_args

    def capture(self, args=None, namespace=None):
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                parser_commands.extend(action.choices)
        raise SystemExit(0)

    argparse.ArgumentParser.parse_args = capture  # type: ignore[method-assign]
    try:
        with pytest.raises(SystemExit):
            main(["--help"])
    finally:
        argparse.ArgumentParser.parse_args = original  # type: ignore[method-assign]
    return parser_commands


def test_every_command_is_documented() -> None:
    commands = _commands()
    assert "demo" in commands
    docs = (REPO_ROOT / "README.md").read_text()
    docs += "".join(p.read_text() for p in (REPO_ROOT / "docs").glob("**/*.md"))
    undocumented = [c for c in commands if not re.search(rf"mandala {c}\b", docs)]
    assert undocumented == []


def _tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its bytes (None for a folder)."""
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(folder.rglob("*"))
    }


def test_demo_reset_removes_only_what_the_demo_made(tmp_path) -> None:
    """A reset of ``--db results`` leaves ``results_final.csv``, ``results_dir/`` etc. alone."""
    neighbours = {
        "results_final.csv": b"seed,score\n0,0.9\n",
        "results.db.bak": b"a user's backup",
        "results.blobs.txt": b"notes",
    }
    for name, data in neighbours.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "results_dir").mkdir()
    (tmp_path / "results_dir" / "model.pkl").write_bytes(b"weights")
    before = _tree(tmp_path)
    db = tmp_path / "results"
    for _ in range(2):  # the second run resets the store the first made
        assert main(["demo", "--db", str(db)]) == 0
        assert db.is_file()
    after = _tree(tmp_path)
    assert {name: after[name] for name in before} == before
    made = set(after) - set(before)
    assert made <= {"results", "results-wal", "results-shm", "results.svg"} | {
        name for name in made if name.startswith("results.blobs")
    }
    assert main(["demo", "--db", str(db)]) == 0  # and it can reset its own store again
    assert _tree(tmp_path).keys() >= before.keys()


def test_demo_refuses_a_file_it_did_not_make(tmp_path, capsys) -> None:
    """An existing file (a user's store or anything else) is never written to or removed."""
    from mandala.imports import Storage, op

    @op
    def inc(x):
        return x + 1

    store = tmp_path / "mine.db"
    with Storage(store):
        inc(1)
    other = tmp_path / "notes.txt"
    other.write_text("not a store")
    for path in (store, other):
        before = path.read_bytes()
        for extra in ([], ["--keep"]):
            assert main(["demo", "--db", str(path), *extra]) == 2
            error = capsys.readouterr().err
            assert "was not created by the demo" in error and "--db" in error
            assert path.read_bytes() == before
    assert not (tmp_path / "mine.db.svg").exists()


def test_demo_keeps_a_blob_folder_and_picture_it_did_not_make(tmp_path, capsys) -> None:
    db = tmp_path / "d.db"
    blobs = tmp_path / "d.db.blobs"
    (blobs / "ab").mkdir(parents=True)
    (blobs / "ab" / "keep.me").write_bytes(b"someone else's")
    picture = tmp_path / "d.db.svg"
    picture.write_text("<svg>a user's picture</svg>")
    for _ in range(2):
        assert main(["demo", "--db", str(db)]) == 0
    assert (blobs / "ab" / "keep.me").read_bytes() == b"someone else's"
    assert picture.read_text() == "<svg>a user's picture</svg>"
    assert "was not made by the demo: no picture drawn" in capsys.readouterr().out
