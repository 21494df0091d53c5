"""Claims on calls with a lease (``mandala.backends.claims``), on every persistent store: two
Storage objects on one location stand for two processes."""

from __future__ import annotations

import time

from mandala.backends import claims
from tests.conftest import PersistentStore

KEYS = [bytes([i]) * 16 for i in range(4)]


def test_a_claim_is_exclusive_until_released(persistent: PersistentStore) -> None:
    first, second = persistent.open().backend, persistent.open().backend
    assert claims.claim(first, KEYS[:3], "a", 60) == set(KEYS[:3])
    assert claims.claim(second, KEYS, "b", 60) == {KEYS[3]}
    assert claims.claim(first, KEYS[:3], "a", 60) == set(KEYS[:3])  # re-claiming one's own
    claims.release(second, KEYS[:3], "b")  # not b's: nothing happens
    assert claims.claim(second, KEYS[:1], "b", 60) == set()
    claims.release(first, KEYS[:1], "a")
    assert claims.claim(second, KEYS[:1], "b", 60) == {KEYS[0]}
    owners = claims.claims_of(first, KEYS)
    assert {key: owner for key, (owner, _) in owners.items()} == {
        KEYS[0]: "b",
        KEYS[1]: "a",
        KEYS[2]: "a",
        KEYS[3]: "b",
    }


def test_an_expired_lease_is_taken_over_and_cannot_be_renewed(
    persistent: PersistentStore,
) -> None:
    first, second = persistent.open().backend, persistent.open().backend
    assert claims.claim(first, KEYS[:2], "a", 0.2) == set(KEYS[:2])
    assert claims.claim(second, KEYS[:2], "b", 60) == set()
    time.sleep(0.3)  # both leases have expired
    # an expired lease that nobody took over can still be renewed by its owner
    assert claims.renew(first, KEYS[1:2], "a", 60) == {KEYS[1]}
    assert claims.claim(second, KEYS[:2], "b", 60) == {KEYS[0]}  # the other one is taken over
    assert claims.renew(first, KEYS[:2], "a", 60) == {KEYS[1]}  # and no longer renewed
    _, lease_until = claims.claims_of(first, KEYS[1:2])[KEYS[1]]
    assert lease_until > time.time() + 30


def test_released_claims_leave_no_rows(persistent: PersistentStore) -> None:
    backend = persistent.open().backend
    claims.claim(backend, KEYS, "a", 60)
    claims.release(backend, KEYS, "a")
    assert claims.claims_of(backend, KEYS) == {}
    assert claims.claim(backend, [], "a", 60) == set()
