"""Showing a computation frame: its graph as a graphviz picture, notebook HTML, printed text.

Works on plain data that the frame passes down (a :class:`GraphDrawing`, a :class:`FrameSummary`,
text): nothing here knows frames, so drawing and printing stay out of the library layers (an
import-linter contract in ``pyproject.toml`` keeps ``subprocess``, ``webbrowser`` and IPython
out of ``mandala.frames``).

Pictures are drawn by the graphviz ``dot`` program, called as a subprocess: no Python binding is
needed, but the program must be installed (``apt-get install graphviz``, ``brew install graphviz``
or ``conda install graphviz``).
"""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import sys
import tempfile
import webbrowser
from dataclasses import dataclass
from pathlib import Path

from mandala.errors import FeatureUnavailableError, FrameError

__all__ = [
    "RENDER_FORMATS",
    "SHOW_HOW",
    "ORIENTATIONS",
    "VarBox",
    "FuncBox",
    "Arrow",
    "GraphDrawing",
    "FrameSummary",
    "dot_source",
    "render_dot",
    "check_draw_options",
    "show_drawing",
    "summary_html",
    "show_text",
]

RENDER_FORMATS = ("svg", "svgz", "png", "jpg", "jpeg", "jpe", "gif", "webp", "pdf", "ps", "eps")
"""Picture formats :func:`show_drawing` renders, chosen by the extension of ``path``."""

_SOURCE_FORMATS = ("dot", "gv")
"""Extensions for which :func:`show_drawing` writes the DOT source itself (no ``dot``)."""

SHOW_HOW = ("none", "inline", "browser", "open")
ORIENTATIONS = ("TB", "LR", "BT", "RL")

_INSTALL_HINT = (
    "the graphviz 'dot' program is needed to render a picture but was not found on PATH; "
    "install graphviz (apt-get install graphviz / brew install graphviz / "
    "conda install graphviz), or call draw() without a path (or get_dot_source()) "
    "to get the DOT source"
)

# solarized colours, as in the original pictures
_BLUE = "#268bd2"
_RED = "#dc322f"
_GREY = "#586e75"
_VAR_FILL = "#eaf3fb"
_FUNC_FILL = "#fcebea"


@dataclass(frozen=True)
class VarBox:
    """A variable of the picture: its name and a summary line (``"5 values"``)."""

    name: str
    summary: str


@dataclass(frozen=True)
class FuncBox:
    """A function node of the picture: its name, its op (as shown) and its number of calls."""

    name: str
    op_label: str
    calls: int


@dataclass(frozen=True)
class Arrow:
    """An edge of the picture with its label as shown (may hold a line break)."""

    source: str
    target: str
    label: str


@dataclass(frozen=True)
class GraphDrawing:
    """What a picture of a frame shows: nodes in the order drawn, and edges."""

    nodes: tuple[VarBox | FuncBox, ...]
    arrows: tuple[Arrow, ...]


@dataclass(frozen=True)
class FrameSummary:
    """The counts and graph text a frame's notebook summary shows."""

    type_name: str
    variables: int
    refs: int
    functions: int
    calls: int
    graph_text: str


def _dot_id(name: str) -> str:
    """A DOT identifier (always quoted, so any node name works)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot_string(text: str) -> str:
    """A quoted DOT string; newlines become graphviz's centred line breaks."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n") + '"'


def _html_line(text: str, color: str, size: int = 10) -> str:
    return f'<font point-size="{size}" color="{color}">{html.escape(text)}</font>'


def _node_attrs(node: VarBox | FuncBox) -> str:
    if isinstance(node, VarBox):
        label = f"<b>{html.escape(node.name)}</b><br/>{_html_line(node.summary, _BLUE)}"
        return (
            f'shape=box, style="rounded,filled", color="{_BLUE}", fillcolor="{_VAR_FILL}", '
            f"label=<{label}>"
        )
    label = (
        f"<b>{html.escape(node.name)}</b><br/>{_html_line('@op:' + node.op_label, _GREY)}"
        f"<br/>{_html_line(f'{node.calls} calls', _RED)}"
    )
    return f'shape=box, style=filled, color="{_RED}", fillcolor="{_FUNC_FILL}", label=<{label}>'


def dot_source(drawing: GraphDrawing, orientation: str = "TB") -> str:
    """The drawing as a graphviz DOT graph.

    Raises:
        FrameError: ``orientation`` is not one of ``TB``, ``LR``, ``BT``, ``RL``.
    """
    if orientation not in ORIENTATIONS:
        raise FrameError(
            f"draw: orientation must be one of {', '.join(ORIENTATIONS)}, got {orientation!r}"
        )
    lines = [
        "digraph ComputationFrame {",
        f'    graph [rankdir={orientation}, fontname="Helvetica"];',
        '    node [fontname="Helvetica", fontsize=12];',
        '    edge [fontname="Helvetica", fontsize=10];',
    ]
    for node in drawing.nodes:
        lines.append(f"    {_dot_id(node.name)} [{_node_attrs(node)}];")
    for arrow in drawing.arrows:
        lines.append(
            f"    {_dot_id(arrow.source)} -> {_dot_id(arrow.target)} "
            f"[label={_dot_string(arrow.label)}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_dot(source: str, fmt: str) -> bytes:
    """Render DOT source with the graphviz ``dot`` program.

    Raises:
        FrameError: ``fmt`` is not one of :data:`RENDER_FORMATS`.
        FeatureUnavailableError: ``dot`` is not on PATH.
        RuntimeError: ``dot`` failed (its error output is in the message).
    """
    if fmt not in RENDER_FORMATS:
        raise FrameError(f"cannot render format {fmt!r}; use one of {', '.join(RENDER_FORMATS)}")
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


def check_draw_options(show_how: str | None, path: str | os.PathLike[str] | None) -> str:
    """The way to show a picture (``show_how``, None meaning ``"none"``), checked with the
    extension of ``path``.

    Raises:
        FrameError: an unknown ``show_how`` or extension of ``path``.
    """
    how = "none" if show_how is None else show_how
    if how not in SHOW_HOW:
        raise FrameError(f"draw: show_how must be one of {', '.join(SHOW_HOW)}, got {how!r}")
    if path is not None:
        fmt = Path(path).suffix.lower().lstrip(".")
        if fmt not in RENDER_FORMATS + _SOURCE_FORMATS:
            raise FrameError(
                f"draw: cannot render to {os.fspath(path)!r}: unsupported extension "
                f"{Path(path).suffix!r}; use one of "
                f"{', '.join('.' + f for f in RENDER_FORMATS + _SOURCE_FORMATS)}"
            )
    return how


def show_drawing(
    source: str, how: str, path: str | os.PathLike[str] | None, print_dot: bool
) -> None:
    """Write DOT ``source`` to ``path`` (as a picture in the format its extension names, or
    as DOT source for ``.dot``/``.gv``) and show it as ``how`` says (see ``draw``); the
    options are checked by :func:`check_draw_options`.

    Raises:
        FeatureUnavailableError: a picture is needed but graphviz ``dot`` is not installed.
    """
    if print_dot:
        print(source)  # noqa: T201 - asked for
    fmt = Path(path).suffix.lower().lstrip(".") if path is not None else None
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


def summary_html(summary: FrameSummary) -> str:
    """A compact notebook summary of a frame: counts and the graph text (no external assets)."""
    desc = summary.graph_text
    graph = (
        f'<pre style="margin:0.3em 0 0 1em">{html.escape(desc)}</pre>'
        if desc
        else "<p><i>(empty graph)</i></p>"
    )
    return (
        '<div class="mandala-computation-frame">'
        f"<p><b>{html.escape(summary.type_name)}</b> with "
        f"{summary.variables} variable(s) ({summary.refs} unique refs), "
        f"{summary.functions} operation(s) ({summary.calls} unique calls)</p>"
        f"<p>Computational graph:</p>{graph}</div>"
    )


def show_text(text: str) -> None:
    """Print text a frame was asked to print (``print_graph``, ``info``, ...)."""
    print(text)  # noqa: T201 - its documented job
