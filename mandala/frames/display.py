"""Showing a frame: its graph as text, summaries, notebook HTML, and pictures through graphviz.

Written as a mixin of :class:`~mandala.frames.frame.ComputationFrame`. The printing methods
(:meth:`~DisplayMixin.print_graph`, :meth:`~DisplayMixin.info` and friends) print because that is
their documented job; everything they print is also available as data (:meth:`get_graph_desc`,
:meth:`get_var_stats`, :meth:`get_func_stats`, :meth:`get_dot_source`).

Pictures are drawn by the graphviz ``dot`` program, called as a subprocess: no Python binding is
needed, but the program must be installed (``apt-get install graphviz``, ``brew install graphviz``
or ``conda install graphviz``).
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import webbrowser
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

import pandas as pd

from mandala._text import format_table
from mandala.errors import FeatureUnavailableError
from mandala.frames.graph import FrameGraph

__all__ = ["DisplayMixin", "RENDER_FORMATS", "SHOW_HOW", "ORIENTATIONS"]

RENDER_FORMATS = ("svg", "svgz", "png", "jpg", "jpeg", "jpe", "gif", "webp", "pdf", "ps", "eps")
"""Picture formats :meth:`DisplayMixin.draw` renders, chosen by the extension of ``path``."""

_SOURCE_FORMATS = ("dot", "gv")
"""Extensions for which :meth:`DisplayMixin.draw` writes the DOT source itself (no ``dot``)."""

SHOW_HOW = ("none", "inline", "browser", "open")
ORIENTATIONS = ("TB", "LR", "BT", "RL")

_INSTALL_HINT = (
    "the graphviz 'dot' program is needed to render a picture but was not found on PATH; "
    "install graphviz (apt-get install graphviz / brew install graphviz / "
    "conda install graphviz), or call draw() without a path (or get_dot_source()) "
    "to get the DOT source"
)

_INDEXED_OUTPUT = re.compile(r"^output_(\d+)$")

# solarized colours, as in the original pictures
_BLUE = "#268bd2"
_RED = "#dc322f"
_GREY = "#586e75"
_VAR_FILL = "#eaf3fb"
_FUNC_FILL = "#fcebea"


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


def _dot_id(name: str) -> str:
    """A DOT identifier (always quoted, so any node name works)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot_string(text: str) -> str:
    """A quoted DOT string; newlines become graphviz's centred line breaks."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n") + '"'


def _html_line(text: str, color: str, size: int = 10) -> str:
    return f'<font point-size="{size}" color="{color}">{html.escape(text)}</font>'


class DisplayMixin(FrameGraph):
    """Text, HTML and picture views of ComputationFrame."""

    # ================================================================== graph text

    def get_graph_desc(self) -> str:
        """The graph as text: isolated variables, then one line per function node.

        Function nodes come in topological order (the nodes of a cycle together), one line
        each: ``y@y = increment(x=x)``. An output is written ``var@output_name``, several
        variables on one output ``(a | b)@out``; an input ``label=var`` (or ``label=a | b``).
        A function node with no calls or no edges is written too (``f()``), never an error.
        """
        lines = []
        isolated = sorted(
            v for v in self.vs if not self.in_neighbors(v) and not self.out_neighbors(v)
        )
        if isolated:
            lines.append(", ".join(isolated))
        for func in self.sort_nodes(self.fs):
            outputs = []
            declared = self.index.declared_outputs(self.op_of[func])
            for label in sorted(self.out[func], key=lambda out: _output_order(out, declared)):
                targets = sorted(self.out[func][label])
                names = targets[0] if len(targets) == 1 else "(" + " | ".join(targets) + ")"
                outputs.append(f"{names}@{label}")
            inputs = [
                f"{label}={' | '.join(sorted(self.inp[func][label]))}"
                for label in sorted(self.inp[func])
            ]
            call = f"{func}({', '.join(inputs)})"
            lines.append(f"{', '.join(outputs)} = {call}" if outputs else call)
        return "\n".join(lines)

    def print_graph(self) -> None:
        """Print :meth:`get_graph_desc`."""
        print(self.get_graph_desc())  # noqa: T201 - its documented job

    def _counts(self) -> tuple[int, int]:
        """(unique refs, unique calls) over all nodes."""
        refs = len(set().union(*self.vs.values())) if self.vs else 0
        calls = len(set().union(*self.fs.values())) if self.fs else 0
        return refs, calls

    def __repr__(self) -> str:
        refs, calls = self._counts()
        desc = textwrap.indent(self.get_graph_desc(), "    ")
        return (
            f"{type(self).__name__} with:\n"
            f"    {len(self.vs)} variable(s) ({refs} unique refs)\n"
            f"    {len(self.fs)} operation(s) ({calls} unique calls)\n"
            f"Computational graph:\n{desc}"
        )

    def _repr_html_(self) -> str:
        """A compact summary for notebooks: counts and the graph text (no external assets)."""
        refs, calls = self._counts()
        desc = self.get_graph_desc()
        graph = (
            f'<pre style="margin:0.3em 0 0 1em">{html.escape(desc)}</pre>'
            if desc
            else "<p><i>(empty graph)</i></p>"
        )
        return (
            '<div class="mandala-computation-frame">'
            f"<p><b>{html.escape(type(self).__name__)}</b> with "
            f"{len(self.vs)} variable(s) ({refs} unique refs), "
            f"{len(self.fs)} operation(s) ({calls} unique calls)</p>"
            f"<p>Computational graph:</p>{graph}</div>"
        )

    def _ipython_key_completions_(self) -> list[str]:
        return sorted(self.nodes)

    # ================================================================== statistics

    def _edge_elements(self, source: str, target: str, label: str) -> tuple[set[bytes], set[bytes]]:
        """(calls, refs) travelling on one edge: calls of its function node connected through
        ``label`` to refs of its variable node."""
        calls: set[bytes] = set()
        refs: set[bytes] = set()
        known: AbstractSet[bytes]
        if source in self.vs:
            var, func = source, target
            known = self.vs[var]
            for key in self.fs.get(func, ()):
                found = [r for r in self.call_inputs_on(self.index.calls[key], label) if r in known]
                if found:
                    calls.add(key)
                    refs.update(found)
        else:
            func, var = source, target
            known = self.vs.get(var) or set()
            for key in self.fs.get(func, ()):
                found = [
                    r for r in self.call_outputs_on(self.index.calls[key], label) if r in known
                ]
                if found:
                    calls.add(key)
                    refs.update(found)
        return calls, refs

    def get_var_stats(self) -> pd.DataFrame:
        """One row per variable (topological order).

        Columns: ``name``, ``num_values`` (refs), ``num_sources`` (refs with no creator call in
        the frame), ``num_sinks`` (refs no call of the frame consumes), ``in_degree`` and
        ``out_degree`` (labelled edges).
        """
        rows = [
            (
                var,
                len(self.vs[var]),
                len(self.source_elements(var)),
                len(self.sink_elements(var)),
                len(self.in_edges(var)),
                len(self.out_edges(var)),
            )
            for var in self.sort_nodes(self.vs)
        ]
        columns = ["name", "num_values", "num_sources", "num_sinks", "in_degree", "out_degree"]
        table = pd.DataFrame(rows, columns=columns)
        return table.astype({c: "int64" for c in columns[1:]})

    def get_func_stats(self) -> pd.DataFrame:
        """One row per function node (topological order).

        Columns: ``name``, ``op`` (the op's name), ``num_calls``, ``in_degree`` and
        ``out_degree`` (labelled edges).
        """
        rows = [
            (
                func,
                self.op_of.get(func, func),
                len(self.fs[func]),
                len(self.in_edges(func)),
                len(self.out_edges(func)),
            )
            for func in self.sort_nodes(self.fs)
        ]
        columns = ["name", "op", "num_calls", "in_degree", "out_degree"]
        table = pd.DataFrame(rows, columns=columns)
        return table.astype({c: "int64" for c in columns[2:]})

    # ================================================================== printed summaries

    def _check_nodes(self, nodes: Iterable[str], kind: str = "node") -> None:
        pool = self.vs if kind == "variable" else self.fs if kind == "function" else self.nodes
        missing = [n for n in nodes if n not in pool]
        if missing:
            raise ValueError(
                f"{kind} {missing[0]!r} not found in the CF; "
                f"variables: {sorted(self.vs)}, functions: {sorted(self.fs)}"
            )

    def info(self, *nodes: str) -> None:
        """Print a summary of the frame: counts, the graph, and tables of variables and ops.

        With ``nodes``, print :meth:`var_info` / :meth:`func_info` of each of them instead.

        Raises:
            ValueError: a node is not in the frame (nothing is printed).
        """
        if nodes:
            self._check_nodes(nodes)
            print("\n\n".join(self._node_info(n) for n in nodes))  # noqa: T201
            return
        refs, calls = self._counts()
        var_table = self.get_var_stats()
        func_table = self.get_func_stats()
        parts = [
            f"{type(self).__name__} with {len(self.vs)} variable(s) ({refs} unique refs), "
            f"{len(self.fs)} operation(s) ({calls} unique calls)",
            "Computational graph:",
            textwrap.indent(self.get_graph_desc(), "    ") or "    (empty)",
            "Variables:",
            _indented_table(var_table, ["name", "num_values", "num_sources", "num_sinks"]),
            "Operations:",
            _indented_table(func_table, ["name", "op", "num_calls"]),
        ]
        print("\n".join(parts))  # noqa: T201 - its documented job

    def _node_info(self, node: str) -> str:
        return self._var_info_text(node) if node in self.vs else self._func_info_text(node)

    def var_info(self, vname: str) -> None:
        """Print a variable's number of refs, sources and sinks, and its creator and consumer
        ops with the number of calls on each edge.

        Raises:
            ValueError: ``vname`` is not a variable of the frame.
        """
        self._check_nodes([vname], "variable")
        print(self._var_info_text(vname))  # noqa: T201 - its documented job

    def _var_info_text(self, vname: str) -> str:
        creators = []
        for func, _, label in self.in_edges(vname):
            calls, _ = self._edge_elements(func, vname, label)
            creators.append(f"{vname}={func}::{label} ({_plural(len(calls), 'call')})")
        consumers = []
        for _, func, label in self.out_edges(vname):
            calls, _ = self._edge_elements(vname, func, label)
            consumers.append(f"{func}({label}={vname}, ...) ({_plural(len(calls), 'call')})")
        return "\n".join(
            [
                f"Variable {vname} with {len(self.vs[vname])} value(s)",
                f"Sources: {len(self.source_elements(vname))} value(s) with no creator call "
                "in the CF",
                f"Sinks: {len(self.sink_elements(vname))} value(s) with no consumer call in the CF",
                f"Creator ops: {' | '.join(creators) if creators else '(none)'}",
                f"Consumer ops: {' | '.join(consumers) if consumers else '(none)'}",
            ]
        )

    def func_info(self, fname: str) -> None:
        """Print a function node's op, number of calls, input and output edges (with their
        labels and call counts), and the code versions of its calls when they are recorded.

        Raises:
            ValueError: ``fname`` is not a function node of the frame.
        """
        self._check_nodes([fname], "function")
        print(self._func_info_text(fname))  # noqa: T201 - its documented job

    def _func_info_text(self, fname: str) -> str:
        keys = self.fs[fname]
        lines = [
            f"Operation {fname} (op {self.op_of.get(fname, fname)!r}) with {len(keys)} call(s)"
        ]
        in_edges = sorted(self.in_edges(fname), key=lambda e: (e[2], e[0]))
        lines.append("Inputs:" if in_edges else "Inputs: (none)")
        for var, _, label in in_edges:
            calls, refs = self._edge_elements(var, fname, label)
            lines.append(
                f"    {label}={var} ({_plural(len(calls), 'call')}, {_plural(len(refs), 'value')})"
            )
        declared = self.index.declared_outputs(self.op_of[fname])
        out_edges = sorted(
            self.out_edges(fname), key=lambda e: (_output_order(e[2], declared), e[1])
        )
        lines.append("Outputs:" if out_edges else "Outputs: (none)")
        for _, var, label in out_edges:
            calls, refs = self._edge_elements(fname, var, label)
            lines.append(
                f"    {var}@{label} ({_plural(len(calls), 'call')}, {_plural(len(refs), 'value')})"
            )
        versions: dict[tuple[int, str | None, str | None], int] = {}
        for key in keys:
            call = self.index.calls[key]
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
            counts = ", ".join(
                f"{v}: {_plural(c, 'call')}" for (v, _, _), c in sorted(versions.items())
            )
            lines.append(f"Op versions: {counts}")
        return "\n".join(lines)

    # ================================================================== pictures

    def get_dot_source(self, verbose: bool = False, orientation: str = "TB") -> str:
        """The frame as a graphviz DOT graph (the source :meth:`draw` renders).

        Variables are rounded boxes labelled with their name and "N values"; function nodes
        are boxes labelled with their name, ``@op:<op name>`` and "N calls"; edges carry their
        label. With ``verbose``, variables also show how many of their refs are sources and
        sinks, edges how many values travel on them, and ops their number of semantic versions
        when there are several.

        Raises:
            ValueError: ``orientation`` is not one of ``TB``, ``LR``, ``BT``, ``RL``.
        """
        if orientation not in ORIENTATIONS:
            raise ValueError(
                f"draw: orientation must be one of {', '.join(ORIENTATIONS)}, got {orientation!r}"
            )
        lines = [
            "digraph ComputationFrame {",
            f'    graph [rankdir={orientation}, fontname="Helvetica"];',
            '    node [fontname="Helvetica", fontsize=12];',
            '    edge [fontname="Helvetica", fontsize=10];',
        ]
        for node in self.topsort():
            if node in self.vs:
                lines.append(f"    {_dot_id(node)} [{self._var_attrs(node, verbose)}];")
            else:
                lines.append(f"    {_dot_id(node)} [{self._func_attrs(node, verbose)}];")
        for source, target, label in self.edges():
            func = target if target in self.fs else source
            shown = label
            if self.op_of.get(func) == "__make_list__" and label == "elts":
                shown = "*elts"
            if verbose:
                _, refs = self._edge_elements(source, target, label)
                shown = f"{shown}\n({_plural(len(refs), 'value')})"
            lines.append(
                f"    {_dot_id(source)} -> {_dot_id(target)} [label={_dot_string(shown)}];"
            )
        lines.append("}")
        return "\n".join(lines) + "\n"

    def _var_attrs(self, var: str, verbose: bool) -> str:
        summary = f"{len(self.vs[var])} values"
        if verbose:
            parts = []
            num_sources = len(self.source_elements(var))
            num_sinks = len(self.sink_elements(var))
            if num_sources:
                parts.append(f"{num_sources} sources")
            if num_sinks:
                parts.append(f"{num_sinks} sinks")
            if parts:
                summary += f" ({'/'.join(parts)})"
        label = f"<b>{html.escape(var)}</b><br/>{_html_line(summary, _BLUE)}"
        return (
            f'shape=box, style="rounded,filled", color="{_BLUE}", fillcolor="{_VAR_FILL}", '
            f"label=<{label}>"
        )

    def _func_attrs(self, func: str, verbose: bool) -> str:
        keys = self.fs[func]
        op_name = self.op_of.get(func, func)
        if verbose:
            versions = {self.index.calls[k].semantic_version for k in keys}
            if len(versions) > 1:
                op_name = f"{op_name} ({len(versions)} versions)"
        label = (
            f"<b>{html.escape(func)}</b><br/>{_html_line('@op:' + op_name, _GREY)}"
            f"<br/>{_html_line(f'{len(keys)} calls', _RED)}"
        )
        return f'shape=box, style=filled, color="{_RED}", fillcolor="{_FUNC_FILL}", label=<{label}>'

    def draw(
        self,
        show_how: str | None = "inline",
        path: str | os.PathLike[str] | None = None,
        verbose: bool = False,
        print_dot: bool = False,
        orientation: str = "TB",
    ) -> None:
        """Draw the frame's graph with graphviz, as the original: shown in the notebook, and
        written to ``path`` if one is given.

        Args:
            show_how: ``"inline"`` (default: display the picture when running under IPython or
                Jupyter; nothing happens in a plain script), ``"browser"`` or ``"open"`` (open
                the picture with the system's web browser / viewer), or ``"none"``.
            path: write the picture there, in the format named by the extension (``.svg``,
                ``.png``, ``.jpg``, ``.pdf``, ... any of :data:`RENDER_FORMATS`; ``.dot`` /
                ``.gv`` write the DOT source itself).
            verbose: annotate with source/sink and per-edge counts (see :meth:`get_dot_source`).
            print_dot: also print the DOT source.
            orientation: graphviz ``rankdir``: ``"TB"`` (top to bottom) or ``"LR"``, ...

        :meth:`get_dot_source` gives the DOT source as a string.

        Raises:
            ValueError: unknown extension of ``path``, ``show_how`` or ``orientation``.
            FeatureUnavailableError: a picture is needed but graphviz ``dot`` is not installed.
        """
        how = "none" if show_how is None else show_how
        if how not in SHOW_HOW:
            raise ValueError(f"draw: show_how must be one of {', '.join(SHOW_HOW)}, got {how!r}")
        fmt = None
        if path is not None:
            fmt = Path(path).suffix.lower().lstrip(".")
            if fmt not in RENDER_FORMATS + _SOURCE_FORMATS:
                raise ValueError(
                    f"draw: cannot render to {os.fspath(path)!r}: unsupported extension "
                    f"{Path(path).suffix!r}; use one of "
                    f"{', '.join('.' + f for f in RENDER_FORMATS + _SOURCE_FORMATS)}"
                )
        source = self.get_dot_source(verbose=verbose, orientation=orientation)
        if print_dot:
            print(source)  # noqa: T201 - asked for
        picture: bytes | None = None
        if path is not None and fmt is not None:
            if fmt in _SOURCE_FORMATS:
                Path(path).write_text(source, encoding="utf-8")
            else:
                picture = render_dot(source, fmt)
                Path(path).write_bytes(picture)
        if how == "inline":
            _show_inline(source, picture, fmt)
        elif how in ("browser", "open"):
            if path is not None and fmt in RENDER_FORMATS:
                target = Path(path).resolve()
            else:
                with tempfile.NamedTemporaryFile(
                    prefix="mandala-cf-", suffix=".svg", delete=False
                ) as handle:
                    handle.write(render_dot(source, "svg"))
                target = Path(handle.name)
            webbrowser.open(target.as_uri())


def render_dot(source: str, fmt: str) -> bytes:
    """Render DOT source with the graphviz ``dot`` program.

    Raises:
        ValueError: ``fmt`` is not one of :data:`RENDER_FORMATS`.
        FeatureUnavailableError: ``dot`` is not on PATH.
        RuntimeError: ``dot`` failed (its error output is in the message).
    """
    if fmt not in RENDER_FORMATS:
        raise ValueError(f"cannot render format {fmt!r}; use one of {', '.join(RENDER_FORMATS)}")
    dot = shutil.which("dot")
    if dot is None:
        raise FeatureUnavailableError(_INSTALL_HINT)
    result = subprocess.run(
        [dot, f"-T{fmt}"], input=source.encode("utf-8"), capture_output=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"graphviz 'dot -T{fmt}' failed with exit code {result.returncode}: "
            f"{result.stderr.decode('utf-8', 'replace').strip()}"
        )
    return result.stdout


def _in_ipython() -> bool:
    """Whether this runs under an IPython shell (a notebook kernel or ``ipython``); IPython is
    looked up, not imported: a shell has imported it already."""
    ipython = sys.modules.get("IPython")
    return ipython is not None and ipython.get_ipython() is not None


def _show_inline(source: str, picture: bytes | None, fmt: str | None) -> None:
    """Display the picture when running under IPython (a notebook or its shell); nothing in
    a plain script, where there is nowhere to show it."""
    if not _in_ipython():
        return
    from IPython.display import SVG, Image, display

    if picture is not None and fmt in ("png", "jpg", "jpeg", "jpe", "gif", "webp"):
        display(Image(data=picture, format="jpeg" if fmt.startswith("jp") else fmt))
    elif picture is not None and fmt == "svg":
        display(SVG(data=picture))
    else:
        display(SVG(data=render_dot(source, "svg")))


def _indented_table(table: pd.DataFrame, columns: list[str]) -> str:
    if table.empty:
        return "    (none)"
    rows: list[list[Any]] = table[columns].values.tolist()
    return textwrap.indent(format_table(columns, rows), "    ")
