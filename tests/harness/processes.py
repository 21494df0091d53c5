"""Child interpreters for the tests: the checkout first on their ``PYTHONPATH``."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["REPO_ROOT", "child_env"]

REPO_ROOT = Path(__file__).resolve().parents[2]


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment with the checkout first on ``PYTHONPATH`` (and ``extra``)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.update(extra)
    return env
