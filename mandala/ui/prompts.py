"""Asking the user about a code change, through ``input()`` (scriptable by patching it).

This is the only place mandala prompts: the versioner decides nothing on its own under the
``"ask"`` policy; the Storage passes :func:`ask_about_change` to it.
"""

from __future__ import annotations

import difflib
import sys
from typing import Any

__all__ = ["ask_about_change", "QUESTION", "format_diff"]

QUESTION = (
    "Does this change require recomputation of dependent calls?\n"
    "WARNING: if the change created new dependencies and you choose 'no', you should add them "
    "by hand or risk missing changes in them.\n"
    "Answer: [y]es/[n]o/[a]bort "
)

_RED, _GREEN, _RESET = "\x1b[31m", "\x1b[32m", "\x1b[0m"


def format_diff(old: str, new: str, color: bool | None = None, context: int = 2) -> str:
    """A unified diff of two texts (coloured when writing to a terminal)."""
    if color is None:
        color = sys.stdout.isatty()
    lines = []
    for line in difflib.unified_diff(
        old.splitlines(), new.splitlines(), "old", "new", n=context, lineterm=""
    ):
        if color and line.startswith("-") and not line.startswith("---"):
            line = _RED + line + _RESET
        elif color and line.startswith("+") and not line.startswith("+++"):
            line = _GREEN + line + _RESET
        lines.append(line)
    return "\n".join(lines)


def ask_about_change(change: Any) -> str:
    """Show a changed component and its diff; ask y/n/a until one is given; return it.

    Raises:
        EOFError: there is no input to read (no terminal): the caller turns it into advice.
    """
    print(f"CHANGE DETECTED in {change.qualname} from module {change.module}")  # noqa: T201
    if change.affected_calls:
        print(f"Stored calls that used it: {change.affected_calls}")  # noqa: T201
    print(format_diff(change.old_source, change.new_source))  # noqa: T201
    if change.new_dependencies:
        print(f"New dependencies in this change: {', '.join(change.new_dependencies)}")  # noqa: T201
    while True:
        # The question is printed, then read with a bare input(), as the original did: code
        # that answers by patching input() (notebooks, tests) still shows the question.
        print(QUESTION)  # noqa: T201
        answer = input().strip().lower()
        if answer in ("y", "n", "a"):
            print(f'You answered: "{answer}"')  # noqa: T201
            return answer
