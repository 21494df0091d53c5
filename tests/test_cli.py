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
