"""Code versions of a versioned original store (placeholder, filled in below)."""

from __future__ import annotations

from typing import Any

__all__ = ["VersionMap"]


class VersionMap:
    def call_version(self, call: Any) -> tuple[str | None, str | None]:
        raise NotImplementedError

    def remember_action(self, session: Any, spec: Any, inputs: Any, call: Any) -> Any:
        raise NotImplementedError


def version_map(old: Any, storage: Any, report: Any) -> VersionMap | None:
    return None
