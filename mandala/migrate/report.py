"""What a migration did: counts per kind of record, and what it could not convert."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Counts", "Problem", "MigrationReport"]


@dataclass
class Counts:
    """How many records of one kind were converted (new in the target), already present in the
    target (an earlier run, or the same result computed there), or skipped (see the problems)."""

    converted: int = 0
    present: int = 0
    skipped: int = 0

    @property
    def total(self) -> int:
        return self.converted + self.present + self.skipped


@dataclass(frozen=True)
class Problem:
    """Something that was not converted.

    Attributes:
        kind: ``"value"``, ``"call"`` or ``"version"``.
        old_id: its id in the original store (content id of a value, history id of a call).
        op_name: the op of the call (or of the first call needing the value), if any.
        reason: why, and what to do about it.
    """

    kind: str
    old_id: str
    op_name: str | None
    reason: str


@dataclass
class MigrationReport:
    """The result of :func:`mandala.migrate.from_pymandala`.

    Attributes:
        ops, calls, values, collections, versions: per-kind :class:`Counts`. Calls are the
            original's calls of user ops (its structural calls are rebuilt with each call that
            uses the collection); collections are the original's list and dict refs; versions
            are the distinct code versions of a versioned store.
        problems: what was skipped, and why (a value that cannot be loaded, the calls that
            needed it, ...).
        seconds: wall-clock duration of the migration.
    """

    ops: Counts = field(default_factory=Counts)
    calls: Counts = field(default_factory=Counts)
    values: Counts = field(default_factory=Counts)
    collections: Counts = field(default_factory=Counts)
    versions: Counts = field(default_factory=Counts)
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def converted(self) -> int:
        """Records new in the target, all kinds together (0 on a repeated migration)."""
        return sum(
            c.converted
            for c in (self.ops, self.calls, self.values, self.collections, self.versions)
        )

    @property
    def ok(self) -> bool:
        """True when nothing was skipped."""
        return not self.problems

    def lines(self) -> list[str]:
        """A plain-text summary, one line per kind and per problem."""
        out = []
        for name in ("ops", "calls", "values", "collections", "versions"):
            c: Counts = getattr(self, name)
            out.append(
                f"{name:<12} {c.converted:>8} converted {c.present:>8} already present "
                f"{c.skipped:>8} skipped"
            )
        for p in self.problems:
            where = f" (op {p.op_name})" if p.op_name else ""
            out.append(f"skipped {p.kind} {p.old_id}{where}: {p.reason}")
        out.append(f"took {self.seconds:.2f} s")
        return out
