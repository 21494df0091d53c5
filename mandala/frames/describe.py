"""What a frame shows of itself, as data: its graph as text, counts, statistics tables, the
text of its printed summaries and the content of its picture.

Functions over a :class:`~mandala.frames.graph.FrameGraph`; ``ComputationFrame`` methods return
what they make (``get_graph_desc``, ``get_var_stats``, ...) or hand it to ``mandala.ui`` to be
printed, drawn or shown in a notebook.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Collection, Iterable
from collections.abc import Set as AbstractSet

import pandas as pd

from mandala._text import format_table
from mandala.errors import NodeNotFoundError
from mandala.frames.graph import FrameGraph
from mandala.ui.graph_view import Arrow, FrameSummary, FuncBox, GraphDrawing, VarBox

__all__ = [
    "graph_desc",
    "counts",
    "summary",
    "repr_text",
    "var_stats",
    "func_stats",
    "check_nodes",
    "info_text",
    "node_info_text",
    "var_info_text",
    "func_info_text",
    "drawing",
]

_INDEXED_OUTPUT = re.compile(r"^output_(\d+)$")


def _output_order(label: str, declared: tuple[str, ...] = ()) -> tuple[int, int, str]:
    """Outputs in return order: ``output_0, output_1, ..., output_10``, and named outputs in
    the order the op declared them (``declared``), any others by name."""
    match = _INDEXED_OUTPUT.match(label)
    if match is not None:
        return (0, int(match.group(1)), label)
    if label in declared:
        return (1, declared.index(label), label)
    return (2, 0, label)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


# ====================================================================== graph text


def graph_desc(graph: FrameGraph) -> str:
    """The graph as text: isolated variables, then one line per function node (see
    ``ComputationFrame.get_graph_desc``)."""
    lines = []
    isolated = sorted(
        v for v in graph.refs_by_var if not graph.in_neighbors(v) and not graph.out_neighbors(v)
    )
    if isolated:
        lines.append(", ".join(isolated))
    for func in graph.sort_nodes(graph.calls_by_func):
        outputs = []
        declared = graph.index.declared_outputs(graph.op_by_func[func])
        by_label = graph.outgoing[func]
        for label in sorted(by_label, key=lambda out: _output_order(out, declared)):
            targets = sorted(by_label[label])
            names = targets[0] if len(targets) == 1 else "(" + " | ".join(targets) + ")"
            outputs.append(f"{names}@{label}")
        inputs = [
            f"{label}={' | '.join(sorted(graph.incoming[func][label]))}"
            for label in sorted(graph.incoming[func])
        ]
        call = f"{func}({', '.join(inputs)})"
        lines.append(f"{', '.join(outputs)} = {call}" if outputs else call)
    return "\n".join(lines)


def counts(graph: FrameGraph) -> tuple[int, int]:
    """(unique refs, unique calls) over all nodes."""
    refs = len(set().union(*graph.refs_by_var.values())) if graph.refs_by_var else 0
    calls = len(set().union(*graph.calls_by_func.values())) if graph.calls_by_func else 0
    return refs, calls


def summary(graph: FrameGraph, type_name: str) -> FrameSummary:
    """Counts and graph text, for a notebook summary."""
    refs, calls = counts(graph)
    return FrameSummary(
        type_name, len(graph.refs_by_var), refs, len(graph.calls_by_func), calls, graph_desc(graph)
    )


def repr_text(graph: FrameGraph, type_name: str) -> str:
    """The ``repr`` of a frame: counts and the indented graph text."""
    refs, calls = counts(graph)
    desc = textwrap.indent(graph_desc(graph), "    ")
    return (
        f"{type_name} with:\n"
        f"    {len(graph.refs_by_var)} variable(s) ({refs} unique refs)\n"
        f"    {len(graph.calls_by_func)} operation(s) ({calls} unique calls)\n"
        f"Computational graph:\n{desc}"
    )


# ====================================================================== statistics


def _edge_elements(
    graph: FrameGraph, source: str, target: str, label: str
) -> tuple[set[bytes], set[bytes]]:
    """(calls, refs) travelling on one edge: calls of its function node connected through
    ``label`` to refs of its variable node."""
    calls: set[bytes] = set()
    refs: set[bytes] = set()
    known: AbstractSet[bytes]
    index_calls = graph.index.calls
    if graph.is_var(source):
        func = target
        known = graph.refs_by_var[source]
        for key in graph.calls_by_func.get(func, ()):
            found = [r for r in graph.call_inputs_on(index_calls[key], label) if r in known]
            if found:
                calls.add(key)
                refs.update(found)
    else:
        func = source
        known = graph.refs_by_var.get(target) or set()
        for key in graph.calls_by_func.get(func, ()):
            found = [r for r in graph.call_outputs_on(index_calls[key], label) if r in known]
            if found:
                calls.add(key)
                refs.update(found)
    return calls, refs


def var_stats(graph: FrameGraph) -> pd.DataFrame:
    """One row per variable (topological order); see ``ComputationFrame.get_var_stats``."""
    rows = [
        (
            var,
            len(graph.refs_by_var[var]),
            len(graph.source_elements(var)),
            len(graph.sink_elements(var)),
            len(graph.in_edges(var)),
            len(graph.out_edges(var)),
        )
        for var in graph.sort_nodes(graph.refs_by_var)
    ]
    columns = ["name", "num_values", "num_sources", "num_sinks", "in_degree", "out_degree"]
    table = pd.DataFrame(rows, columns=columns)
    return table.astype({c: "int64" for c in columns[1:]})


def func_stats(graph: FrameGraph) -> pd.DataFrame:
    """One row per function node (topological order); see ``ComputationFrame.get_func_stats``."""
    rows = [
        (
            func,
            graph.op_by_func.get(func, func),
            len(graph.calls_by_func[func]),
            len(graph.in_edges(func)),
            len(graph.out_edges(func)),
        )
        for func in graph.sort_nodes(graph.calls_by_func)
    ]
    columns = ["name", "op", "num_calls", "in_degree", "out_degree"]
    table = pd.DataFrame(rows, columns=columns)
    return table.astype({c: "int64" for c in columns[2:]})


# ====================================================================== printed summaries


def check_nodes(graph: FrameGraph, nodes: Iterable[str], kind: str = "node") -> None:
    """Raise unless every one of ``nodes`` is a node of that ``kind`` (``"variable"``,
    ``"function"`` or any ``"node"``).

    Raises:
        NodeNotFoundError: one is not.
    """
    pool: Collection[str]
    if kind == "variable":
        pool = graph.refs_by_var
    elif kind == "function":
        pool = graph.calls_by_func
    else:
        pool = graph.nodes
    missing = [n for n in nodes if n not in pool]
    if missing:
        raise NodeNotFoundError(
            f"{kind} {missing[0]!r} not found in the CF; "
            f"variables: {sorted(graph.refs_by_var)}, functions: {sorted(graph.calls_by_func)}"
        )


def _indented_table(table: pd.DataFrame, columns: list[str]) -> str:
    if table.empty:
        return "    (none)"
    rows: list[list[object]] = table[columns].values.tolist()
    return textwrap.indent(format_table(columns, rows), "    ")


def info_text(graph: FrameGraph, type_name: str) -> str:
    """The summary ``info()`` prints: counts, the graph, tables of variables and ops."""
    refs, calls = counts(graph)
    parts = [
        f"{type_name} with {len(graph.refs_by_var)} variable(s) ({refs} unique refs), "
        f"{len(graph.calls_by_func)} operation(s) ({calls} unique calls)",
        "Computational graph:",
        textwrap.indent(graph_desc(graph), "    ") or "    (empty)",
        "Variables:",
        _indented_table(var_stats(graph), ["name", "num_values", "num_sources", "num_sinks"]),
        "Operations:",
        _indented_table(func_stats(graph), ["name", "op", "num_calls"]),
    ]
    return "\n".join(parts)


def node_info_text(graph: FrameGraph, node: str) -> str:
    """:func:`var_info_text` or :func:`func_info_text`, by the kind of ``node``."""
    return var_info_text(graph, node) if graph.is_var(node) else func_info_text(graph, node)


def var_info_text(graph: FrameGraph, vname: str) -> str:
    """What ``var_info`` prints: counts, creator and consumer ops with calls per edge."""
    creators = []
    for func, _, label in graph.in_edges(vname):
        calls, _ = _edge_elements(graph, func, vname, label)
        creators.append(f"{vname}={func}::{label} ({_plural(len(calls), 'call')})")
    consumers = []
    for _, func, label in graph.out_edges(vname):
        calls, _ = _edge_elements(graph, vname, func, label)
        consumers.append(f"{func}({label}={vname}, ...) ({_plural(len(calls), 'call')})")
    return "\n".join(
        [
            f"Variable {vname} with {len(graph.refs_by_var[vname])} value(s)",
            f"Sources: {len(graph.source_elements(vname))} value(s) with no creator call in the CF",
            f"Sinks: {len(graph.sink_elements(vname))} value(s) with no consumer call in the CF",
            f"Creator ops: {' | '.join(creators) if creators else '(none)'}",
            f"Consumer ops: {' | '.join(consumers) if consumers else '(none)'}",
        ]
    )


def func_info_text(graph: FrameGraph, fname: str) -> str:
    """What ``func_info`` prints: op, calls, edges with their counts, code versions."""
    keys = graph.calls_by_func[fname]
    op_name = graph.op_by_func.get(fname, fname)
    lines = [f"Operation {fname} (op {op_name!r}) with {len(keys)} call(s)"]
    in_edges = sorted(graph.in_edges(fname), key=lambda e: (e[2], e[0]))
    lines.append("Inputs:" if in_edges else "Inputs: (none)")
    for var, _, label in in_edges:
        calls, refs = _edge_elements(graph, var, fname, label)
        lines.append(
            f"    {label}={var} ({_plural(len(calls), 'call')}, {_plural(len(refs), 'value')})"
        )
    declared = graph.index.declared_outputs(graph.op_by_func[fname])
    out_edges = sorted(graph.out_edges(fname), key=lambda e: (_output_order(e[2], declared), e[1]))
    lines.append("Outputs:" if out_edges else "Outputs: (none)")
    for _, var, label in out_edges:
        calls, refs = _edge_elements(graph, fname, var, label)
        lines.append(
            f"    {var}@{label} ({_plural(len(calls), 'call')}, {_plural(len(refs), 'value')})"
        )
    versions: dict[tuple[int, str | None, str | None], int] = {}
    for key in keys:
        call = graph.index.calls[key]
        version = (call.op_version, call.semantic_version, call.content_version)
        versions[version] = versions.get(version, 0) + 1
    if any(sv is not None or cv is not None for _, sv, cv in versions):
        lines.append("Versions:")
        for (op_version, sv, cv), count in sorted(versions.items(), key=lambda kv: str(kv[0])):
            lines.append(
                f"    op version {op_version}, semantic {sv}, content {cv}: "
                f"{_plural(count, 'call')}"
            )
    elif len({v for v, _, _ in versions}) > 1:
        listed = ", ".join(
            f"{v}: {_plural(c, 'call')}" for (v, _, _), c in sorted(versions.items())
        )
        lines.append(f"Op versions: {listed}")
    return "\n".join(lines)


# ====================================================================== picture


def drawing(graph: FrameGraph, verbose: bool = False) -> GraphDrawing:
    """What a picture of the graph shows (see ``ComputationFrame.get_dot_source``)."""
    nodes: list[VarBox | FuncBox] = []
    for node in graph.topsort():
        if graph.is_var(node):
            nodes.append(VarBox(node, _var_summary(graph, node, verbose)))
        else:
            keys = graph.calls_by_func[node]
            op_name = graph.op_by_func.get(node, node)
            if verbose:
                versions = {graph.index.calls[k].semantic_version for k in keys}
                if len(versions) > 1:
                    op_name = f"{op_name} ({len(versions)} versions)"
            nodes.append(FuncBox(node, op_name, len(keys)))
    arrows = []
    for source, target, label in graph.edges():
        func = target if target in graph.calls_by_func else source
        shown = label
        if graph.op_by_func.get(func) == "__make_list__" and label == "elts":
            shown = "*elts"
        if verbose:
            _, refs = _edge_elements(graph, source, target, label)
            shown = f"{shown}\n({_plural(len(refs), 'value')})"
        arrows.append(Arrow(source, target, shown))
    return GraphDrawing(tuple(nodes), tuple(arrows))


def _var_summary(graph: FrameGraph, var: str, verbose: bool) -> str:
    summary = f"{len(graph.refs_by_var[var])} values"
    if verbose:
        parts = []
        num_sources = len(graph.source_elements(var))
        num_sinks = len(graph.sink_elements(var))
        if num_sources:
            parts.append(f"{num_sources} sources")
        if num_sinks:
            parts.append(f"{num_sinks} sinks")
        if parts:
            summary += f" ({'/'.join(parts)})"
    return summary
