"""Guarding a call's inputs against an op body that changes them.

A call is identified by the content of its inputs, hashed before the body runs. If the body
mutates an input (``xs.append(...)``), the value stored under that content id must still be the
one that was hashed, and refs to it must keep meaning that value. So, for each input whose value
could change (anything but ``int``, ``float``, ``str``, ``bytes``, ... and tuples of them), its
bytes are recorded *before* the body runs, and its content is hashed again after it: a change
is reported per the storage's ``on_input_mutation`` policy:

- ``"warn"`` (default): an :class:`~mandala.errors.InputMutationWarning` naming the op and the
  argument; the call is recorded for the inputs as passed, and the refs of the changed inputs
  drop the changed object (they load the recorded value when next used);
- ``"error"``: :class:`~mandala.errors.InputMutationError`; nothing of the call is recorded;
- ``"ignore"``: no second hash (saves its cost on large inputs); what is stored is still the
  value as it was passed.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from mandala.errors import InputMutationError, InputMutationWarning, SerializationError
from mandala.hashing.values import content_key
from mandala.model.refs import AtomRef, DictRef, ListRef, Ref, SetRef

if TYPE_CHECKING:
    from mandala.engine.declaration import OpDeclaration
    from mandala.engine.session import Session

__all__ = ["MUTATION_POLICIES", "InputGuard", "check_mutation_policy"]

MUTATION_POLICIES = ("warn", "error", "ignore")

_IMMUTABLE: frozenset[type] = frozenset(
    {int, float, complex, str, bytes, bool, type(None), range, type(Ellipsis)}
)


def check_mutation_policy(policy: str) -> str:
    """Return ``policy`` if it is one of :data:`MUTATION_POLICIES`.

    Raises:
        ValueError: it is not.
    """
    if policy not in MUTATION_POLICIES:
        raise ValueError(
            f"on_input_mutation={policy!r}: expected one of {', '.join(map(repr, MUTATION_POLICIES))}"
        )
    return policy


def may_change(value: object) -> bool:
    """False for values no op body can change in place (immutable scalars, tuples of them)."""
    cls = type(value)
    if cls in _IMMUTABLE:
        return False
    if cls is tuple or cls is frozenset:
        return any(may_change(item) for item in value)  # type: ignore[attr-defined]
    return True


_COLLECTIONS = (ListRef, DictRef, SetRef)


def _atoms(ref: Ref) -> list[AtomRef]:
    """The in-memory atoms of an input: itself, or the elements of a collection (nested)."""
    if type(ref) is AtomRef:
        return [ref] if ref.in_memory and ref.history_key != ref.content_key else []
    found: list[AtomRef] = []
    if type(ref) not in _COLLECTIONS:
        return found  # e.g. a parallel block's pending ref: no value here yet
    if ref.in_memory and ref.obj is not None:
        elements = ref.obj.values() if isinstance(ref.obj, dict) else ref.obj
        for element in elements:
            if isinstance(element, Ref):
                found.extend(_atoms(element))
    return found


class InputGuard:
    """The inputs of one pending call that its body could change (see the module doc)."""

    __slots__ = ("op_name", "policy", "recorded", "watched")

    def __init__(
        self, op: OpDeclaration, inputs: dict[str, Ref], session: Session, policy: str
    ) -> None:
        self.op_name = op.name
        self.policy = policy
        self.recorded: list[bytes] = []
        self.watched: list[tuple[str, AtomRef]] = []
        for name, ref in inputs.items():
            for atom in _atoms(ref):
                if not may_change(atom.obj):
                    continue
                try:
                    with session.lock:
                        if session.record_value(atom.content_key, atom.obj):
                            self.recorded.append(atom.content_key)
                except SerializationError as error:
                    self.discard(session)
                    raise SerializationError(
                        f"op {op.name!r}, argument {name!r}: {error}"
                    ) from error
                if policy != "ignore":
                    self.watched.append((name, atom))

    def discard(self, session: Session) -> None:
        """Forget the values recorded for this call (its body failed, or was refused)."""
        session.discard_values(self.recorded)
        self.recorded = []

    def check(self, session: Session) -> None:
        """After the body ran: report the inputs it changed, per the policy.

        Raises:
            InputMutationError: an input changed and the policy is ``"error"`` (the values
                recorded for this call are discarded).
        """
        changed: list[tuple[str, AtomRef]] = []
        for name, atom in self.watched:
            try:
                now = content_key(atom.obj)
            except Exception:  # noqa: BLE001 - an input that no longer hashes has changed
                now = b""
            if now != atom.content_key:
                changed.append((name, atom))
        if not changed:
            return
        names = ", ".join(sorted({repr(name) for name, _ in changed}))
        if self.policy == "error":
            self.discard(session)
            raise InputMutationError(
                f"op {self.op_name!r} changed its argument(s) {names} while it ran; the call "
                "was not recorded. Copy the input inside the op before changing it, or open "
                "the storage with on_input_mutation='warn' to record such calls for the "
                "inputs as they were passed"
            )
        for _, atom in changed:
            # The ref keeps meaning the value that was hashed (and recorded): drop the object.
            atom.in_memory = False
            atom.obj = None
        warnings.warn(
            InputMutationWarning(
                f"op {self.op_name!r} changed its argument(s) {names} while it ran: the call is "
                "stored for the inputs as they were passed, and their refs keep that value. "
                "Copy the input inside the op before changing it (or pass "
                "on_input_mutation='error' to refuse such calls)"
            ),
            stacklevel=4,
        )
