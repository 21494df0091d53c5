"""Helpers of the original library's ``mandala.utils`` that user code and notebooks import."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from mandala.hashing.serialization import deserialize, serialize
from mandala.hashing.values import content_key

__all__ = ["get_content_hash", "serialize", "deserialize", "mock_input"]


def get_content_hash(obj: object) -> str:
    """The content id of a value: what ``ref.cid`` is for a ref holding it (32 hex chars)."""
    return content_key(obj).hex()


def mock_input(answers: Iterable[str]) -> Callable[..., str]:
    """A replacement for ``input()`` that returns the given answers in turn (for scripted prompts).

    Use as ``unittest.mock.patch("builtins.input", mock_input(["y", "n"]))``.
    """
    remaining = iter(answers)

    def fake_input(prompt: str = "") -> str:  # noqa: ARG001 - input()'s signature
        try:
            return next(remaining)
        except StopIteration:
            raise EOFError("mock_input: no answers left") from None

    return fake_input
