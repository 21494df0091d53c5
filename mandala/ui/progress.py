"""The progress display of a parallel block: counts of calls by state, on stderr.

Shown only when asked for (``progress=True``) or, by default, when stderr is a terminal; a block
run in CI, a pipe or a log file prints nothing. Rendered with rich, imported on first use.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Protocol

from mandala.errors import FeatureUnavailableError

__all__ = ["BatchCounts", "ProgressDisplay", "open_progress"]


@dataclass(frozen=True)
class BatchCounts:
    """How many distinct calls of a parallel block are in each state."""

    total: int
    pending: int
    """Waiting: for their inputs, or for another process that claimed them."""
    running: int
    """Submitted to the executor, not finished."""
    done: int
    """Computed by this block and saved."""
    failed: int
    from_store: int
    """Found in the store (before dispatch, or computed meanwhile by another process)."""
    not_run: int = 0
    """Not run because an input failed."""

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.from_store + self.not_run

    def describe(self) -> str:
        text = (
            f"{self.pending} pending, {self.running} running, {self.done} done, "
            f"{self.failed} failed, {self.from_store} from store"
        )
        return text + (f", {self.not_run} not run" if self.not_run else "")


class ProgressDisplay(Protocol):
    def update(self, counts: BatchCounts) -> None: ...

    def close(self) -> None: ...


class _NoDisplay:
    def update(self, counts: BatchCounts) -> None:  # noqa: ARG002 - the ProgressDisplay protocol; this display shows nothing
        return None

    def close(self) -> None:
        return None


class _RichDisplay:
    """A rich progress bar whose description carries the counts."""

    def __init__(self, stream: Any) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            TextColumn("mandala"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=Console(file=stream),
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._task = self._progress.add_task("", total=None)
        self._progress.start()

    def update(self, counts: BatchCounts) -> None:
        self._progress.update(
            self._task,
            total=counts.total,
            completed=counts.finished,
            description=counts.describe(),
        )

    def close(self) -> None:
        self._progress.refresh()
        self._progress.stop()


def open_progress(enabled: bool | None, stream: Any = None) -> ProgressDisplay:
    """A display on ``stream`` (stderr by default): on if ``enabled``, off if False, and when
    None on only if the stream is a terminal.

    Raises:
        FeatureUnavailableError: ``enabled`` is True but rich is not installed.
    """
    stream = sys.stderr if stream is None else stream
    if enabled is None:
        isatty = getattr(stream, "isatty", None)
        enabled = bool(isatty and isatty())
    if not enabled:
        return _NoDisplay()
    try:
        return _RichDisplay(stream)
    except ImportError as error:
        raise FeatureUnavailableError(
            "the progress bar of storage.parallel() needs rich: pip install "
            "'pymandala[parallel]' (or pass progress=False)"
        ) from error
