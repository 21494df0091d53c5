"""Bulk reads from SQLite as columns: each column of a result comes back as one string.

Fetching a million rows through ``sqlite3`` makes a tuple per row and an object per cell, which
costs an order of magnitude more than SQLite's own scan of the same rows. So a
bulk read asks SQLite to aggregate each column into one value (``group_concat``): integers and
floats as text joined by commas, fixed-size keys and byte strings concatenated with no
separator (with their lengths as a second column when they vary), text joined by a control
character. Python then cuts the few strings apart with numpy or slicing. All aggregates of one
statement see the rows in the same order, so the columns stay aligned.

Every reader here returns None when its input does not fit what it assumes (a key that is not
16 bytes, a separator inside a text, a result above SQLite's length limit); the caller then reads
the same query row by row. Nothing here writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from mandala.backends.records import Column
from mandala.hashing.digest import KEY_SIZE

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "InlineValues",
    "ValuePrefetch",
    "by_format",
    "read_columns",
    "read_inline_values",
]

_TEXT_SEPARATOR = "\x1f"
"""Joins text cells (ASCII unit separator: never in an op, input or version name)."""
_NULL_TEXT = "\x1e"
"""Stands for a NULL text cell."""


def _aggregate(column: Column, name: str) -> str:
    if column is Column.INT:
        return f"group_concat({name}, ',')"
    if column is Column.KEY:
        return f"CAST(group_concat({name}, '') AS BLOB)"
    if column is Column.TEXT:
        return f"group_concat({name}, char(31))"
    if column is Column.OPT_TEXT:
        return f"group_concat(ifnull({name}, char(30)), char(31))"
    # quote() prints a REAL with as many digits as it takes to read back the same double; a
    # NULL becomes 'nan' (SQLite stores no NaN: it turns them into NULL)
    return f"group_concat(CASE WHEN {name} IS NULL THEN 'nan' ELSE quote({name}) END, ',')"


def _split(column: Column, text: Any, count: int, as_array: bool = False) -> list[Any] | None:
    """The cells of an aggregated column, or None when they do not cut into ``count``.

    ``as_array``: keys and integers come as one numpy array (``S16`` or ``int64``) rather than
    a list of objects (never read a key array item by item: a ``bytes_`` item drops trailing
    zero bytes), and texts are not interned."""
    import numpy as np  # here, not at import: opening a store does not need numpy

    if column is Column.KEY:
        if len(text) != KEY_SIZE * count:
            return None
        if as_array:
            return np.frombuffer(text, dtype=f"S{KEY_SIZE}")  # type: ignore[return-value]
        from mandala.hashing.key_table import key_list

        return key_list(np.frombuffer(text, dtype=f"S{KEY_SIZE}"))
    if column is Column.INT or column is Column.OPT_REAL:
        try:
            numbers = np.fromstring(  # text mode: parses in C, no string per number
                text, dtype=np.int64 if column is Column.INT else np.float64, sep=","
            )
        except ValueError:
            return None
        if len(numbers) != count:
            return None
        if as_array and column is Column.INT:
            return numbers  # type: ignore[return-value]
        cells = numbers.tolist()
        if column is Column.OPT_REAL:
            for position in np.flatnonzero(np.isnan(numbers)).tolist():
                cells[position] = None
        return cells
    parts = text.split(_TEXT_SEPARATOR)
    if len(parts) != count:
        return None
    if as_array and column is Column.TEXT:  # a reader of columns factorizes them itself
        return parts
    interned: dict[str, Any] = {}  # names repeat: one string object each
    if column is Column.OPT_TEXT:
        interned[_NULL_TEXT] = None
    return [interned.setdefault(part, part) for part in parts]


def _aggregate_row(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> Any:
    """The one row of an aggregate query, or None when a result is above SQLite's length
    limit ("string or blob too big")."""
    try:
        return conn.execute(sql, tuple(params)).fetchone()
    except sqlite3.DataError:
        return None
    except sqlite3.OperationalError as error:
        if "too big" in str(error):
            return None
        raise


def read_columns(
    conn: sqlite3.Connection, sql: str, params: Sequence[Any], columns: Sequence[Column]
) -> tuple[list[Any], ...] | None:
    """The result of ``sql`` (a SELECT of ``len(columns)`` columns) as one column each (keys
    and integers as numpy arrays, other cells as lists), rows in the same (unspecified) order
    in every column; None if it must be read row by row."""
    names = [f"c{i}" for i in range(len(columns))]
    aggregates = ", ".join(_aggregate(column, name) for column, name in zip(columns, names))
    # A text holding the separator cuts into too many cells: the count shows it, and the rows
    # are read instead. A text equal to the NULL mark would read as NULL: that is checked here
    # (a test per row of every text would cost a quarter of the whole read).
    marked = [n for c, n in zip(columns, names) if c is Column.OPT_TEXT]
    if marked:
        tests = " OR ".join(f"{n} = char(30)" for n in marked)
        aggregates += f", ifnull(max({tests}), 0)"
    wrapped = f"WITH q ({', '.join(names)}) AS ({sql}) SELECT count(*), {aggregates} FROM q"
    row = _aggregate_row(conn, wrapped, params)
    if row is None:
        return None
    count = row[0]
    if not count:
        return tuple([] for _ in columns)
    if marked and row[-1]:
        return None
    result = []
    for column, text in zip(columns, row[1 : 1 + len(columns)]):
        cells = _split(column, text, count, as_array=True) if text is not None else None
        if cells is None:
            return None
        result.append(cells)
    return tuple(result)


class InlineValues(NamedTuple):
    """Stored values read in bulk, as arrays aligned by row (no object per value until one is
    asked for): a frame's table matches a million values to its cells by key in numpy.

    Row ``i`` holds the value of ``keys[i]`` in format ``formats[i]``; its bytes are
    ``data[offsets[i]:offsets[i + 1]]`` when ``inline[i]`` (else the value is in a blob file and
    has no bytes here); its checksum is ``checksums[checksum_offsets[i]:checksum_offsets[i + 1]]``
    (empty for a value written before checksums existed).
    """

    keys: np.ndarray
    formats: list[str]
    data: bytes
    offsets: np.ndarray
    inline: np.ndarray
    checksums: bytes
    checksum_offsets: np.ndarray

    def payloads(self, rows: np.ndarray) -> list[bytes]:
        """The bytes of the inline values of ``rows``."""
        return _cut(self.data, self.offsets, rows)

    def checksums_of(self, rows: np.ndarray) -> bytes | list[bytes | None]:
        """The checksums of ``rows``: when each row has one, their concatenation (compared
        with the payloads' digests in one comparison); else one per row, None where absent."""
        import numpy as np

        if np.all(np.diff(self.checksum_offsets) == KEY_SIZE):  # one per row
            every: bytes = np.frombuffer(self.checksums, dtype=f"V{KEY_SIZE}")[rows].tobytes()
            return every
        return [part or None for part in _cut(self.checksums, self.checksum_offsets, rows)]


def read_inline_values(conn: sqlite3.Connection, where: str) -> InlineValues | None:
    """The stored values whose rows satisfy ``where`` (an SQL condition on ``stored_values``),
    in one aggregate; None if they must be read row by row."""
    import numpy as np

    query = (
        "SELECT count(*), group_concat(format, char(31)),"
        " CAST(group_concat(content_key, '') AS BLOB),"
        " group_concat(CASE WHEN blob_key IS NULL AND data IS NOT NULL THEN length(data)"
        " ELSE -1 END, ','),"
        " CAST(group_concat(CASE WHEN blob_key IS NULL THEN ifnull(data, x'') ELSE x'' END, '')"
        " AS BLOB),"
        " CAST(group_concat(ifnull(checksum, x''), '') AS BLOB),"
        " group_concat(length(ifnull(checksum, x'')), ',')"
        f" FROM stored_values WHERE {where}"
    )
    row = _aggregate_row(conn, query, ())
    if row is None:
        return None
    count, formats, key_blob, lengths, data, checksum_blob, checksum_lengths = row
    if not count:
        start = np.zeros(1, dtype=np.int64)
        no_keys = np.empty(0, dtype=f"S{KEY_SIZE}")
        return InlineValues(no_keys, [], b"", start, np.empty(0, dtype=bool), b"", start)
    keys = _split(Column.KEY, key_blob, count, as_array=True)
    format_of = _split(Column.TEXT, formats, count, as_array=True)  # a list, not interned
    data = data or b""
    checksum_blob = checksum_blob or b""
    sizes = _offsets(lengths, count, len(data))
    checksum_sizes = _offsets(checksum_lengths, count, len(checksum_blob))
    if keys is None or format_of is None or sizes is None or checksum_sizes is None:
        return None
    key_column: np.ndarray = keys  # type: ignore[assignment]  # as_array: an array
    return InlineValues(
        key_column, format_of, data, sizes[0], sizes[1], checksum_blob, checksum_sizes[0]
    )


def _offsets(lengths: str, count: int, total: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Start offsets (``count + 1`` of them) from comma-joined lengths (-1: no bytes here,
    counted as 0), if they add up; and which lengths were not -1."""
    import numpy as np

    try:
        sizes = np.fromstring(lengths, dtype=np.int64, sep=",")
    except ValueError:
        return None
    present = sizes >= 0
    sizes = np.where(present, sizes, 0)
    if len(sizes) != count or int(sizes.sum()) != total:
        return None
    offsets = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    return offsets, present


def _cut(data: bytes, offsets: np.ndarray, rows: np.ndarray) -> list[bytes]:
    """The parts of ``data`` (cut at ``offsets``, ``count + 1`` of them) of ``rows``."""
    import numpy as np

    count = len(offsets) - 1
    if count > 0 and len(data) and len(data) % count == 0:
        size = len(data) // count
        if np.all(np.diff(offsets) == size):  # one size (keys, 8-byte scalars): cut by numpy
            parts: list[bytes] = np.frombuffer(data, dtype=f"V{size}")[rows].tolist()
            return parts
    starts, ends = offsets[rows].tolist(), offsets[rows + 1].tolist()
    return [data[start:end] for start, end in zip(starts, ends)]


def by_format(
    formats: list[str], rows: np.ndarray, positions: np.ndarray
) -> list[tuple[str, np.ndarray]]:
    """``positions`` (of ``rows``, rows of ``formats``) grouped by the format of their row."""
    import numpy as np

    if not len(positions):
        return []
    first = formats[int(rows[positions[0]])]
    if formats.count(first) == len(formats):  # the common case: one format
        return [(first, positions)]
    names, codes = np.unique(np.array(formats, dtype=object), return_inverse=True)
    codes = codes.reshape(-1)[rows[positions]]
    return [(str(names[code]), positions[codes == code]) for code in np.unique(codes).tolist()]


class ValuePrefetch:
    """Every stored value of a SQLite file, read in bulk on a thread and connection of its own.

    SQLite releases the GIL while it works, so a frame can build its history table and its
    calls while the values it will show are read. The thread only reads: a connection of its
    own sees the committed store, as the store's connection does between transactions.
    :meth:`result` waits for the read; None if it could not be done in bulk (or failed: the
    caller then reads as if nothing had been prefetched).
    """

    def __init__(self, path: str) -> None:
        """``path``: the store's file, absolute (it is opened read-only: never created)."""
        import threading

        self._path = path
        self._result: InlineValues | None = None
        self._thread = threading.Thread(
            target=self._run, name="mandala-value-prefetch", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        from urllib.parse import quote

        try:
            conn = sqlite3.connect(
                f"file:{quote(self._path)}?mode=ro", uri=True, check_same_thread=False
            )
        except sqlite3.Error:
            return
        try:
            conn.execute("PRAGMA query_only = 1")
            self._result = read_inline_values(conn, "1")
        except sqlite3.Error:
            self._result = None
        finally:
            conn.close()

    def result(self) -> InlineValues | None:
        self._thread.join()
        return self._result
