"""``mandala migrate OLD NEW``: exit codes, output, a PostgreSQL target, idempotency."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from mandala.cli.main import main
from mandala.storage import Storage
from tests.migrate import pipeline_ops as ops

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent.parent


def test_migrate_to_a_file_then_again(tmp_path: Path, capsys) -> None:
    old = DATA / "collections.db"
    before = hashlib.sha256(old.read_bytes()).hexdigest()
    new = tmp_path / "new.db"
    assert main(["migrate", str(old), str(new)]) == 0
    out = capsys.readouterr().out
    assert "calls" in out and " converted" in out
    assert main(["migrate", str(old), str(new)]) == 0
    second = capsys.readouterr().out
    for line in second.splitlines()[:5]:
        assert line.split()[1] == "0", line  # nothing new the second time
    assert hashlib.sha256(old.read_bytes()).hexdigest() == before
    ops.EXECUTIONS.clear()
    ops.collections_script(Storage(str(new)))
    assert ops.EXECUTIONS == []


def test_migrate_to_postgres(postgres_location: str, capsys) -> None:
    assert main(["migrate", str(DATA / "pipeline.db"), postgres_location]) == 0
    assert "calls" in capsys.readouterr().out
    ops.EXECUTIONS.clear()
    ops.pipeline_script(Storage(postgres_location))
    assert ops.EXECUTIONS == []


def test_skipped_records_exit_1_and_are_listed(tmp_path: Path, capsys) -> None:
    assert main(["migrate", str(DATA / "unknown.db"), str(tmp_path / "n.db")]) == 1
    captured = capsys.readouterr()
    assert "skipped value" in captured.out and "tests.migrate.pipeline_ops.Unknown" in captured.out
    assert "--allow-pickle" in captured.out
    assert "3 records were not converted" in captured.err
    args = ["migrate", str(DATA / "unknown.db"), str(tmp_path / "n.db"), "--allow-pickle"]
    assert main(args) == 0


def test_a_wrong_old_store_exits_2_and_creates_nothing(tmp_path: Path, capsys) -> None:
    new = tmp_path / "new.db"
    assert main(["migrate", str(tmp_path / "missing.db"), str(new)]) == 2
    assert "no store of the original mandala" in capsys.readouterr().err
    assert not new.exists()
    assert main(["migrate", str(DATA / "versioned.db"), str(new)]) == 2
    assert "--deps-path" in capsys.readouterr().err


def test_python_dash_m_mandala_migrate(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mandala", "migrate", str(DATA / "plain.db"), str(tmp_path / "n")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "calls" in result.stdout
