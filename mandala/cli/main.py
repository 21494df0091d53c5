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

    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
