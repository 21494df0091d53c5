"""The exception family of mandala.

Every error a user can meet derives from :class:`MandalaError` and also from the builtin
exception they would naturally catch (``ValueError``, ``TypeError``, ``KeyError``,
``RuntimeError``), so code written against the original library (which raised builtins) keeps
working while new code can catch the specific situation.
"""

from __future__ import annotations

__all__ = [
    "VersioningError",
    "MandalaWarning",
    "CodeChangeError",
    "ChangeAbortedError",
    "MandalaError",
    "OpDefinitionError",
    "OpCallError",
    "OutputMismatchError",
    "UnhashableValueError",
    "SerializationError",
    "StorageError",
    "SchemaVersionError",
    "ValueNotFoundError",
    "UncommittedChangesError",
    "NewCallsNotAllowedError",
    "ContextError",
    "FeatureUnavailableError",
    "InvalidIdError",
    "CorruptValueError",
    "PendingResultError",
    "ParallelCallError",
    "UnsupportedExecutorError",
    "MigrationError",
    "UnsafePickleError",
    "FrameError",
    "NodeNotFoundError",
    "InputMutationError",
    "InputMutationWarning",
]


class MandalaError(Exception):
    """Base class of every exception raised by mandala."""


class OpDefinitionError(MandalaError, ValueError):
    """An ``@op`` was declared in a way that cannot work (raised at decoration time)."""


class OpCallError(MandalaError, TypeError):
    """An op was called with arguments that cannot be stored (e.g. a non-str ``MDict`` key)."""


class OutputMismatchError(MandalaError, ValueError):
    """An op returned a different number of outputs than it declares; nothing was saved."""


class UnhashableValueError(MandalaError, TypeError):
    """A value can neither be hashed canonically nor pickled, so it cannot get a content id."""


class SerializationError(MandalaError, TypeError):
    """A value cannot be turned into bytes for storage (or read back from them)."""


class StorageError(MandalaError, RuntimeError):
    """The persistent store could not complete an operation."""


class SchemaVersionError(StorageError):
    """The store was written by a release whose schema this release cannot open."""


class ValueNotFoundError(MandalaError, KeyError):
    """A Ref or call id is not known to this storage."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class UncommittedChangesError(MandalaError, ValueError):
    """An operation needs a clean cache but there are uncommitted changes."""


class NewCallsNotAllowedError(MandalaError, RuntimeError):
    """A call is missing from the store while ``allow_new_calls(False)`` is in force."""


class ContextError(MandalaError, RuntimeError):
    """A storage context was used in a way that cannot work (e.g. exited twice)."""


class FeatureUnavailableError(MandalaError, RuntimeError):
    """A documented feature of the original library that this release does not provide yet."""


class InvalidIdError(MandalaError, ValueError):
    """A string given as a history or content id is not a well-formed id."""


class CorruptValueError(StorageError):
    """A stored value's bytes do not match their checksum or cannot be decoded."""


class VersioningError(MandalaError, ValueError):
    """Code versioning cannot give a call a trustworthy version (an untracked dependency, a
    global mutated during a call...)."""


class CodeChangeError(VersioningError):
    """Code changed since the store last saw it and the change policy is ``"error"``."""


class ChangeAbortedError(VersioningError):
    """The user answered "abort" when asked about a code change; the context was not entered."""


class MandalaWarning(UserWarning):
    """Something the user should know about but that does not stop the work (a change marked
    compatible that added a dependency, a global that cannot be hashed...)."""


class PendingResultError(MandalaError, RuntimeError):
    """A result of a ``storage.parallel()`` block was used as a value before it exists.

    Inside the block op calls only build a graph; their values are computed when the block ends.
    Also raised for the refs of calls that failed (or were not run) in a finished block.
    """


class ParallelCallError(MandalaError, RuntimeError):
    """Calls of a ``storage.parallel()`` block failed; the other calls' results were saved.

    Attributes:
        failures: one :class:`CallFailure`-like record per failed call (op name, history id,
            the exception, the worker's traceback as text).
        not_run: history ids of calls that were not run because an input failed.
    """

    def __init__(
        self, message: str, failures: list | None = None, not_run: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.failures = failures or []
        self.not_run = not_run or []


class UnsupportedExecutorError(MandalaError, TypeError):
    """``storage.parallel`` got something that is neither a Dask client, the ``ray`` module nor an
    executor."""


class MigrationError(StorageError):
    """A store of the original library cannot be migrated (not such a store, unreadable...)."""


class UnsafePickleError(MandalaError, TypeError):
    """A pickle in a store of the original library names a type outside the allow-list; loading
    it could run that type's code, so it is refused unless unpickling is allowed explicitly."""


class FrameError(MandalaError, ValueError):
    """A computation frame cannot do what was asked with the arguments given: a node of the
    wrong kind, frames of different storages, an unknown option. A ``ValueError``, as the
    original raised."""


class NodeNotFoundError(FrameError):
    """A node name is not a node (of the kind asked for) of the computation frame."""


class InputMutationError(MandalaError, ValueError):
    """An op changed one of its inputs while it ran, and the storage was opened with
    ``on_input_mutation="error"``: the call is not recorded."""


class InputMutationWarning(UserWarning):
    """An op changed one of its inputs while it ran (``on_input_mutation="warn"``, the default):
    the call is recorded for the inputs as they were passed, and refs keep that value."""
