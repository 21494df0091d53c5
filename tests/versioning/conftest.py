"""A throwaway project folder whose modules tests write, edit and re-import."""

from __future__ import annotations

import importlib
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


class Project:
    """Modules under a fresh deps root, plus an execution log outside it.

    Module names are unique per test (``prefix + name``) so that tests never see each other's
    modules in ``sys.modules``. Code written with :meth:`write` may use ``{log}``, which is
    replaced by the name of the log module: ``import {log} as log`` then ``log.record(...)``.
    """

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "project"
        self.root.mkdir()
        self.prefix = "vp_" + uuid.uuid4().hex[:10] + "_"
        self.log_dir = tmp_path / "log"
        self.log_dir.mkdir()
        self.log_name = self.prefix + "log"
        (self.log_dir / f"{self.log_name}.py").write_text(
            "CALLS = []\n\ndef record(*args):\n    CALLS.append(args)\n"
        )
        sys.path.insert(0, str(self.root))
        sys.path.insert(0, str(self.log_dir))
        importlib.invalidate_caches()
        self.log: Any = importlib.import_module(self.log_name)

    def name(self, short: str) -> str:
        return self.prefix + short

    def write(self, short: str, code: str) -> Path:
        path = self.root / f"{self.name(short)}.py"
        path.write_text(textwrap.dedent(code).replace("{log}", self.log_name))
        return path

    def load(self, short: str) -> ModuleType:
        """Import the module, or re-import it from its current source."""
        name = self.name(short)
        importlib.invalidate_caches()
        sys.modules.pop(name, None)
        # A bytecode cache written in the same second as an edit could be reused: skip it.
        sys.dont_write_bytecode = True
        try:
            return importlib.import_module(name)
        finally:
            sys.dont_write_bytecode = False

    def write_and_load(self, short: str, code: str) -> ModuleType:
        self.write(short, code)
        return self.load(short)

    def executions(self, op_name: str | None = None) -> list[tuple]:
        calls = list(self.log.CALLS)
        return [c for c in calls if op_name is None or c[0] == op_name]

    def clear(self) -> None:
        self.log.CALLS.clear()

    def close(self) -> None:
        for name in [n for n in sys.modules if n.startswith(self.prefix)]:
            del sys.modules[name]
        for path in (str(self.root), str(self.log_dir)):
            if path in sys.path:
                sys.path.remove(path)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    made = Project(tmp_path)
    yield made
    made.close()


def no_prompt(*args: Any) -> str:
    raise AssertionError("the user was asked about a change, but none was expected")
