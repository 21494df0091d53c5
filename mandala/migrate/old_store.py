"""Read-only access to a store written by the original library (pymandala 0.2).

Its SQLite file has five tables (docs/compatibility.md §a.8): ``calls`` (one row per input and output of
each call), ``atoms`` (content id -> pickled value), ``shapes`` (history id -> the pickled,
detached ``Ref``; for a collection, with its element refs), ``ops`` (name -> the pickled
detached ``Op``) and ``sources`` (the pickled code versioner of a versioned store). The file is
opened through a ``mode=ro`` URI, so nothing here can change it; values are unpickled one at a
time, on request, through :mod:`mandala.migrate.unpickle`.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mandala.errors import MigrationError
from mandala.migrate.unpickle import load_pickle, loads_value

__all__ = ["OldCall", "OldOp", "OldRef", "OldStore", "ATOM", "LIST", "DICT"]

ATOM, LIST, DICT = "atom", "list", "dict"
_KINDS = {"AtomRef": ATOM, "ListRef": LIST, "DictRef": DICT}
_TABLES = {"calls", "atoms", "shapes", "ops"}


@dataclass(frozen=True)
class OldOp:
    """An op as the original stored it (its ``detached()`` copy: no code, no ignore_args)."""

    name: str
    version: int
    output_names: tuple[str, ...] | None
    nout: str | int
    structural: bool


@dataclass(frozen=True)
class OldRef:
    """A ref of the original: its ids, its kind, and for a collection its elements' history ids
    (a tuple for a list, ``(key, hid)`` pairs for a dict)."""

    hid: str
    cid: str
    kind: str
    elements: tuple[Any, ...] = ()


@dataclass
class OldCall:
    """One call of the original (its rows of the ``calls`` table)."""

    hid: str
    cid: str
    op_name: str
    semantic_version: str | None
    content_version: str | None
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)


class OldStore:
    """An original store, opened read-only.

    Args:
        path: the SQLite file.
        allow_pickle: unpickle values of types outside the safe allow-list (trusted stores).

    Raises:
        MigrationError: there is no such file, or it is not a store of the original library.
    """

    def __init__(self, path: str | os.PathLike[str], allow_pickle: bool = False) -> None:
        self.path = Path(path)
        self.allow_pickle = allow_pickle
        if not self.path.is_file():
            raise MigrationError(f"no store of the original mandala at {str(self.path)!r}")
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        try:
            self.conn = sqlite3.connect(uri, uri=True)
            tables = {
                row[0]
                for row in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        except sqlite3.DatabaseError as error:
            raise MigrationError(
                f"{str(self.path)!r} is not a SQLite database ({error}); pass the .db file of "
                "a pymandala 0.2 Storage"
            ) from error
        if not tables >= _TABLES:
            hint = (
                "it is already a store of this release"
                if "meta" in tables
                else f"it has the tables {sorted(tables)}"
            )
            raise MigrationError(
                f"{str(self.path)!r} is not a store of the original mandala (pymandala 0.2): "
                f"{hint}; pass the .db file of a pymandala 0.2 Storage"
            )
        self.has_sources = "sources" in tables

    def close(self) -> None:
        self.conn.close()

    # ------------------------------------------------------------------ reading

    def ops(self) -> dict[str, OldOp]:
        """Every op by name.

        Raises:
            UnsafePickleError: an op row names a class outside the original's own.
        """
        result: dict[str, OldOp] = {}
        for name, data in self.conn.execute("SELECT key, value FROM ops"):
            record = load_pickle(bytes(data))
            output_names = record.output_names
            nout = record.nout if record.nout is not None else "auto"
            result[name] = OldOp(
                name=record.name or name,
                version=int(record.version or 0),
                output_names=tuple(output_names) if output_names is not None else None,
                nout=nout,
                structural=bool(getattr(record, "__structural__", False)),
            )
        return result

    def calls(self) -> dict[str, OldCall]:
        """Every call by history id, with its input and output ref history ids by name."""
        calls: dict[str, OldCall] = {}
        rows = self.conn.execute(
            "SELECT call_history_id, name, direction, call_content_id, ref_history_id, op,"
            " semantic_version, content_version FROM calls ORDER BY call_history_id"
        )
        for hid, name, direction, cid, ref_hid, op_name, semantic, content in rows:
            call = calls.get(hid)
            if call is None:
                call = calls[hid] = OldCall(hid, cid, op_name, semantic, content)
            (call.inputs if direction == "in" else call.outputs)[name] = ref_hid
        return calls

    def refs(self) -> dict[str, OldRef]:
        """Every ref by history id (from the ``shapes`` table).

        Raises:
            UnsafePickleError: a shape row names a class outside the original's own.
        """
        result: dict[str, OldRef] = {}
        for hid, data in self.conn.execute("SELECT key, value FROM shapes"):
            record = load_pickle(bytes(data))
            kind = _KINDS.get(type(record).__name__)
            if kind is None:
                raise MigrationError(
                    f"ref {hid} of {str(self.path)!r} is a {type(record).original}, which "
                    "the original library never stores; the file may be damaged"
                )
            elements: tuple[Any, ...] = ()
            if kind == LIST:
                elements = tuple(e.hid for e in record.obj or ())
            elif kind == DICT:
                elements = tuple((k, e.hid) for k, e in (record.obj or {}).items())
            result[hid] = OldRef(hid, record.cid, kind, elements)
        return result

    def value(self, cid: str) -> Any:
        """The value with this content id.

        Raises:
            KeyError: the store has no value with this id.
            UnsafePickleError: its type is outside the allow-list and pickles are not allowed.
        """
        row = self.conn.execute("SELECT value FROM atoms WHERE key = ?", (cid,)).fetchone()
        if row is None:
            raise KeyError(cid)
        return loads_value(bytes(row[0]), self.allow_pickle)

    def versioner(self) -> Any | None:
        """The original's pickled code versioner (stand-in records), or None if unversioned."""
        if not self.has_sources:
            return None
        row = self.conn.execute("SELECT value FROM sources WHERE key = 'versioner'").fetchone()
        if row is None:
            return None
        return load_pickle(bytes(row[0]), stand_in_others=True)
