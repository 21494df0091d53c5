"""The progress display of parallel blocks: counts by state, on stderr, only when wanted."""

from __future__ import annotations

import concurrent.futures
import io

import pytest

from mandala.imports import Storage
from mandala.ui.progress import BatchCounts, open_progress
from tests.parallel import ops_for_workers as ops

COUNTS = BatchCounts(total=10, pending=1, running=2, done=3, failed=1, from_store=3)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_display_shows_every_count() -> None:
    stream = io.StringIO()
    display = open_progress(True, stream)
    display.update(COUNTS)
    display.close()
    text = stream.getvalue()
    for part in ("1 pending", "2 running", "3 done", "1 failed", "3 from store", "7/10"):
        assert part in text


def test_off_when_not_a_terminal_or_when_turned_off() -> None:
    for enabled, stream in ((None, io.StringIO()), (False, Terminal()), (False, io.StringIO())):
        display = open_progress(enabled, stream)
        display.update(COUNTS)
        display.close()
        assert stream.getvalue() == ""
    terminal = Terminal()
    display = open_progress(None, terminal)
    display.update(COUNTS)
    display.close()
    assert "3 done" in terminal.getvalue()


def test_not_run_calls_are_counted_when_there_are_some() -> None:
    assert "not run" not in COUNTS.describe()
    assert "2 not run" in BatchCounts(3, 0, 0, 0, 1, 0, not_run=2).describe()


@pytest.mark.parametrize("progress", [True, None, False])
def test_a_parallel_block_reports_on_stderr_only_when_asked(
    capsys: pytest.CaptureFixture[str], progress: bool | None
) -> None:
    storage = Storage()
    with storage:
        ops.square(1)
    with (
        concurrent.futures.ThreadPoolExecutor(2) as pool,
        storage.parallel(pool, progress=progress),
    ):
        ops.square(1)
        ops.square(2)
    err = capsys.readouterr().err
    if progress:  # pytest's stderr is not a terminal: None means off
        assert "1 done" in err and "1 from store" in err and "2/2" in err
    else:
        assert err == ""
