"""The ``mandala`` command (also ``python -m mandala``)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mandala", description="mandala command-line tools")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run a small memoized pipeline on a SQLite file")
    demo.add_argument("--db", default="mandala_demo.db", help="store file (default: %(default)s)")
    demo.add_argument(
        "--keep",
        action="store_true",
        help="keep the store of an earlier demo run instead of starting afresh",
    )

    info = commands.add_parser("info", help="summarize a store file")
    info.add_argument("db", help="path of the SQLite store")

    migrate = commands.add_parser(
        "migrate", help="copy a store of the original mandala (pymandala 0.2) into a new store"
    )
    migrate.add_argument("old", help="the original's SQLite file (only read)")
    migrate.add_argument("new", help="the target store: a file path or a postgresql:// URL")
    migrate.add_argument(
        "--allow-pickle",
        action="store_true",
        help="also unpickle values of types outside the safe list (runs code named by the store:"
        " only for stores you trust)",
    )
    migrate.add_argument(
        "--deps-path", default=None, help="for a versioned store: the deps_path of your code"
    )

    args = parser.parse_args(argv)
    if args.command == "migrate":
        return _migrate(args.old, args.new, args.allow_pickle, args.deps_path)
    if args.command == "demo":
        from mandala.cli.demo import DemoPathError, run_demo

        try:
            run_demo(args.db, reset=not args.keep)
        except DemoPathError as error:
            print(error, file=sys.stderr)
            return 2
        return 0
    if args.command == "info":
        from pathlib import Path

        from mandala.storage import Storage

        if not Path(args.db).exists():
            print(f"mandala info: no store at {args.db}", file=sys.stderr)
            return 1

        storage = Storage(db_path=args.db)
        storage.cache_info()
        storage.close()
        return 0
    return 2


def _migrate(old: str, new: str, allow_pickle: bool, deps_path: str | None) -> int:
    """Exit status 0: everything migrated; 1: some records skipped (listed); 2: not done."""
    from mandala.errors import MandalaError
    from mandala.migrate import from_pymandala
    from mandala.migrate.old_store import OldStore
    from mandala.storage import Storage

    try:
        OldStore(old).close()  # refuse a wrong OLD before creating NEW
        storage = Storage(db_path=new, deps_path=deps_path, on_change="error")
        try:
            report = from_pymandala(old, storage, allow_pickle=allow_pickle)
        finally:
            storage.close()
    except MandalaError as error:
        print(f"mandala migrate: {error}", file=sys.stderr)
        return 2
    for line in report.lines():
        print(line)
    if report.problems:
        print(
            f"mandala migrate: {len(report.problems)} records were not converted (listed above)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
