"""Claims on calls with a lease: who is computing what, across processes sharing a store.

Two parallel batches started at once on one store (a SQLite file, a PostgreSQL database) would
otherwise both compute every call they share. Before computing a call, a batch *claims* it: a row
of ``call_claims`` (call history key, owner, lease expiry). A claim is won when there is no row,
when the row is the claimer's own, or when its lease has expired (its owner died or hung without
renewing). Others wait for the result, polling the store, and take over when the lease expires.
The owner renews its leases while it computes and deletes its rows once the results are committed
(commit first, then release: whoever wins a released claim finds the result stored).

Times are the clients' clocks (``time.time()``); machines sharing a store should agree within a
small fraction of the lease.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from mandala.backends.sql import SqlBackend

__all__ = ["claim", "renew", "release", "claims_of"]

_CLAIM = (
    "INSERT INTO call_claims (call_key, owner, lease_until) VALUES (?, ?, ?)"
    " ON CONFLICT (call_key) DO UPDATE SET owner = excluded.owner,"
    " lease_until = excluded.lease_until"
    " WHERE call_claims.lease_until < ? OR call_claims.owner = excluded.owner"
)


def claim(
    backend: SqlBackend, call_keys: Sequence[bytes], owner: str, lease_s: float
) -> set[bytes]:
    """Claim calls for ``lease_s`` seconds in one transaction; returns the keys now held.

    Keys held by another owner whose lease has not expired are not taken.
    """
    keys = list(dict.fromkeys(call_keys))
    if not keys:
        return set()

    def body() -> set[bytes]:
        now = time.time()
        until = now + lease_s
        backend.core.executemany(_CLAIM, [(key, owner, until, now) for key in keys])
        return {
            row[0]
            for row in backend.core.rows_in(
                "SELECT call_key FROM call_claims WHERE call_key IN ({marks}) AND owner = ?",
                keys,
                (owner,),
            )
        }

    return {bytes(key) for key in backend.core.transaction(body)}


def renew(
    backend: SqlBackend, call_keys: Sequence[bytes], owner: str, lease_s: float
) -> set[bytes]:
    """Extend the leases of calls still held by ``owner``; returns those (a claim whose lease
    ran out may have been taken over meanwhile: it is not renewed)."""
    keys = list(dict.fromkeys(call_keys))
    if not keys:
        return set()

    def body() -> set[bytes]:
        until = time.time() + lease_s
        held = {
            bytes(row[0])
            for row in backend.core.rows_in(
                "SELECT call_key FROM call_claims WHERE call_key IN ({marks}) AND owner = ?",
                keys,
                (owner,),
            )
        }
        backend.core.executemany(
            "UPDATE call_claims SET lease_until = ? WHERE call_key = ? AND owner = ?",
            [(until, key, owner) for key in sorted(held)],
        )
        return held

    return backend.core.transaction(body)


def release(backend: SqlBackend, call_keys: Sequence[bytes], owner: str) -> None:
    """Delete ``owner``'s claims on these calls (others' claims are left alone)."""
    keys = sorted(set(call_keys))
    if not keys:
        return

    def body() -> None:
        backend.core.executemany(
            "DELETE FROM call_claims WHERE call_key = ? AND owner = ?",
            [(key, owner) for key in keys],
        )

    backend.core.transaction(body)


def claims_of(backend: SqlBackend, call_keys: Sequence[bytes]) -> dict[bytes, tuple[str, float]]:
    """``call key -> (owner, lease_until)`` of the claims on these calls (for inspection)."""
    with backend.core.lock:
        return {
            bytes(row[0]): (row[1], row[2])
            for row in backend.core.rows_in(
                "SELECT call_key, owner, lease_until FROM call_claims WHERE call_key IN ({marks})",
                list(call_keys),
            )
        }
