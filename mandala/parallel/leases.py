"""The claims a parallel block holds on the calls it computes, renewed while it runs.

See ``mandala.backends.claims`` for the protocol. A store that only this process can see (an
in-memory SQLite database) needs no claims: :class:`NoClaims` grants everything.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Sequence

from mandala.backends import claims
from mandala.backends.sql import SqlBackend

__all__ = ["ClaimKeeper", "NoClaims", "Claims", "new_owner"]

logger = logging.getLogger(__name__)


def new_owner() -> str:
    """A claim owner name unique to one block: host, process id and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class NoClaims:
    """Claims for a store no other process can open: every claim is granted at once."""

    owner = "this process"

    def claim(self, keys: Sequence[bytes]) -> set[bytes]:
        return set(keys)

    def release(self, keys: Sequence[bytes]) -> None:  # noqa: ARG002 - the Claims interface (ClaimKeeper's); nothing was claimed
        return None

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None


class ClaimKeeper:
    """Claims of one block on one store, with a thread that renews their leases.

    Args:
        backend: the shared store.
        lease_s: how long a claim lasts without renewal; renewed every third of it. Others take
            over the calls of a block that stopped renewing (its process died) once it expires.
    """

    def __init__(self, backend: SqlBackend, lease_s: float) -> None:
        if not lease_s > 0:
            raise ValueError(f"lease_s must be a positive number of seconds, got {lease_s!r}")
        self.backend = backend
        self.lease_s = float(lease_s)
        self.owner = new_owner()
        self._held: set[bytes] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def claim(self, keys: Sequence[bytes]) -> set[bytes]:
        """Claim these calls; returns those now held by this block."""
        won = claims.claim(self.backend, keys, self.owner, self.lease_s)
        with self._lock:
            self._held |= won
        return won

    def release(self, keys: Sequence[bytes]) -> None:
        """Give up these calls (after their results are committed, or after they failed)."""
        with self._lock:
            mine = [key for key in keys if key in self._held]
            self._held.difference_update(mine)
        if mine:
            claims.release(self.backend, mine, self.owner)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._renew_until_stopped, name="mandala-lease-renewal", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing and release every claim still held."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            remaining = sorted(self._held)
            self._held.clear()
        if remaining:
            claims.release(self.backend, remaining, self.owner)

    def _renew_until_stopped(self) -> None:
        while not self._stopping.wait(self.lease_s / 3):
            with self._lock:
                keys = sorted(self._held)
            if not keys:
                continue
            try:
                kept = claims.renew(self.backend, keys, self.owner, self.lease_s)
            except Exception:  # a failed renewal is retried at the next tick; the lease may lapse
                logger.warning("renewing the leases of %d calls failed", len(keys), exc_info=True)
                continue
            lost = set(keys) - kept
            if lost:
                logger.warning(
                    "%d claimed calls were taken over by another process after their lease "
                    "expired; both may compute them (the store keeps one result)",
                    len(lost),
                )


Claims = ClaimKeeper | NoClaims
