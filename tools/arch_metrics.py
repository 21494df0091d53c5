"""Architecture figures of the package, for the before/after notes of refactors.

Prints: the classes with the most members (own and inherited), the import cycles between
modules (every import, also those inside functions), the number of public signatures that
use ``Any``, the number of ``noqa`` comments, and the lines of the largest modules.

Run: ``python3 tools/arch_metrics.py`` from the checkout root.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mandala"


def module_files() -> dict[str, Path]:
    """Map every module name of the package to its file."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules one module imports, wherever the import statement is."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)
    return {target for target in targets if target in known and target != name}


def import_cycles() -> list[list[str]]:
    """Strongly connected groups of modules (size > 1), ignoring package ``__init__`` files."""
    files = module_files()
    known = set(files)
    graph = {
        name: {t for t in imported_modules(name, path, known) if files[t].name != "__init__.py"}
        for name, path in files.items()
        if path.name != "__init__.py"
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            group = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                group.append(item)
                if item == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def any_in_signatures() -> tuple[int, dict[str, int]]:
    """Functions whose parameter or return annotations mention ``Any``, per top package."""
    per_package: dict[str, int] = defaultdict(int)
    total = 0
    for name, path in module_files().items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            annotations = [a.annotation for a in node.args.args + node.args.kwonlyargs]
            annotations += [node.returns]
            if node.args.vararg:
                annotations.append(node.args.vararg.annotation)
            if node.args.kwarg:
                annotations.append(node.args.kwarg.annotation)
            text = " ".join(ast.unparse(a) for a in annotations if a is not None)
            if "Any" in text.replace("AnyStr", ""):
                total += 1
                per_package[".".join(name.split(".")[:2])] += 1
    return total, dict(per_package)


def largest_classes(limit: int = 8) -> list[tuple[int, str]]:
    """Classes of the package by number of members, inherited ones included."""
    sizes: dict[str, int] = {}
    base_members = set(dir(object))
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="mandala."):
        if info.name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(info.name)
        except Exception:  # noqa: BLE001 - a module whose optional extra is missing is skipped
            continue
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__:
                continue
            members = {m for m in dir(cls) if m not in base_members and not m.startswith("__")}
            sizes[f"{cls.__module__}.{cls.__qualname__}"] = len(members)
    return sorted(((n, k) for k, n in sizes.items()), reverse=True)[:limit]


def noqa_count() -> int:
    return sum(path.read_text().count("# noqa") for path in module_files().values())


def main() -> None:
    print("largest classes (members incl. inherited):")
    for count, name in largest_classes():
        print(f"  {count:4d}  {name}")
    cycles = import_cycles()
    print(f"import cycles: {len(cycles)}")
    for group in cycles:
        print("  " + " <-> ".join(group))
    total, per_package = any_in_signatures()
    print(f"functions with Any in their signature: {total}")
    for package, count in sorted(per_package.items(), key=lambda kv: -kv[1]):
        print(f"  {count:4d}  {package}")
    print(f"noqa comments: {noqa_count()}")
    sizes = sorted(((len(p.read_text().splitlines()), n) for n, p in module_files().items()))
    print("largest modules (lines):")
    for lines, name in reversed(sizes[-6:]):
        print(f"  {lines:5d}  {name}")


if __name__ == "__main__":
    main()
