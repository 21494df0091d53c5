"""Showing computation frames: graph text, repr, HTML, printed summaries, stats, DOT and pictures
(docs/compatibility.md §d.2, §d.8)."""

from __future__ import annotations

import shutil
import sys
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mandala.errors import FeatureUnavailableError
from mandala.imports import MList, Storage, op
from mandala.ui import graph_view as display_module
from mandala.ui.graph_view import render_dot

needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None, reason="graphviz 'dot' is not installed (apt-get install graphviz)"
)

SVG_NS = "{http://www.w3.org/2000/svg}"


@op(output_names=["y"])
def increment(x: int) -> int:
    return x + 1


@op(output_names=["w"])
def add(y: int, z: int) -> int:
    return y + z


@op
def scale(x: int) -> int:
    return x * 2


@op
def average(xs: MList[int]) -> float:
    return sum(xs) / len(xs)


@op
def never_called(a: int) -> int:
    return a


def _run_increment_add(storage: Storage) -> Any:
    """docs/compatibility.md §d.3: 5 increment calls, 3 add calls; returns the last ``w``."""
    with storage:
        for x in range(5):
            y = increment(x)
            if x % 2 == 0:
                w = add(y=y, z=x)
    return w


@pytest.fixture
def inc_add(storage: Storage) -> Storage:
    """A storage holding the increment/add example of docs/compatibility.md §d.3."""
    _run_increment_add(storage)
    return storage


@pytest.fixture
def feedback(storage: Storage) -> tuple[Storage, Any]:
    """A storage where ``x = scale(x)`` ran three times from 1; gives the final ref (8)."""
    with storage:
        x = 1
        for _ in range(3):
            x = scale(x)
    return storage, x


def _replaced(record: Any, **changes: Any) -> Any:
    """A copy of a stored record (a NamedTuple or a frozen dataclass) with ``changes``."""
    if hasattr(record, "_replace"):
        return record._replace(**changes)
    return replace(record, **changes)


def _svg_texts(path: Path) -> set[str]:
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG_NS}svg"
    return {t.text for t in root.iter(f"{SVG_NS}text") if t.text}


# ============================================================================ graph text and repr


def test_single_op_graph_and_repr(inc_add: Storage) -> None:
    cf = inc_add.cf(increment)
    assert cf.get_graph_desc() == "y@y = increment(x=x)"
    assert repr(cf) == (
        "ComputationFrame with:\n"
        "    2 variable(s) (10 unique refs)\n"
        "    1 operation(s) (5 unique calls)\n"
        "Computational graph:\n"
        "    y@y = increment(x=x)"
    )


def test_lines_follow_topological_order(inc_add: Storage) -> None:
    cf = inc_add.cf(increment).expand_all()
    assert cf.get_graph_desc() == "y@y = increment(x=x)\nw@w = add(y=y, z=x)"
    assert repr(cf).splitlines()[1:3] == [
        "    3 variable(s) (13 unique refs)",
        "    2 operation(s) (8 unique calls)",
    ]


def test_expand_back_from_add_reuses_z(inc_add: Storage) -> None:
    # docs/compatibility.md §d.4 [obs]: increment's inputs {0, 2, 4} already sit in z
    cf = inc_add.cf(add).expand_back()
    assert cf.get_graph_desc() == "y@y = increment(x=z)\nw@w = add(y=y, z=z)"


def test_print_graph_prints_the_description(inc_add: Storage, capsys: Any) -> None:
    inc_add.cf(increment).print_graph()
    assert capsys.readouterr().out == "y@y = increment(x=x)\n"


def test_mlist_average_shows_the_make_list_node(storage: Storage) -> None:
    with storage:
        result = average([1, 2, 3])
    assert storage.cf(average).get_graph_desc() == "var_0@output_0 = average(xs=xs)"
    cf = storage.cf(result).expand_back(recursive=True)
    assert cf.get_graph_desc() == (
        "xs@list = __make_list__(elts=elts)\nv@output_0 = average(xs=xs)"
    )


def test_feedback_loop_cycle_prints(feedback: tuple[Storage, Any]) -> None:
    storage, final = feedback
    cf = storage.cf(final).expand_back(recursive=True)
    assert "scale" in cf.out_neighbors("x") and "x" in cf.out_neighbors("scale")  # a cycle
    assert cf.get_graph_desc() == "(v | x)@output_0 = scale(x=x)"
    assert repr(cf).splitlines()[1:3] == [
        "    2 variable(s) (4 unique refs)",
        "    1 operation(s) (3 unique calls)",
    ]


def test_several_variables_on_one_input_are_joined_without_parentheses(
    feedback: tuple[Storage, Any],
) -> None:
    storage, _ = feedback
    cf = storage.cf(scale)
    cf._add_edge("var_0", "scale", "x")  # feed the outputs back in: x=var_0 | x
    assert cf.get_graph_desc() == "var_0@output_0 = scale(x=var_0 | x)"


def test_isolated_variables_come_first_sorted(inc_add: Storage) -> None:
    cf = inc_add.cf(increment)
    cf._add_var("zeta")
    cf._add_var("alpha")
    assert cf.get_graph_desc() == "alpha, zeta\ny@y = increment(x=x)"


def test_frame_of_variables_only(inc_add: Storage) -> None:
    refs = inc_add.cf(increment).refs_by_var()
    cf = inc_add.cf({"b": list(refs["y"]), "a": list(refs["x"])})
    assert repr(cf) == (
        "ComputationFrame with:\n"
        "    2 variable(s) (10 unique refs)\n"
        "    0 operation(s) (0 unique calls)\n"
        "Computational graph:\n"
        "    a, b"
    )


def test_repr_of_an_empty_frame(storage: Storage) -> None:
    cf = storage.cf({})
    assert cf.get_graph_desc() == ""
    assert repr(cf) == (
        "ComputationFrame with:\n"
        "    0 variable(s) (0 unique refs)\n"
        "    0 operation(s) (0 unique calls)\n"
        "Computational graph:\n"
    )


def test_op_without_calls_prints_an_empty_function_node(storage: Storage, capsys: Any) -> None:
    # docs/compatibility.md g.1-6: the original crashed here
    cf = storage.cf(never_called)
    assert repr(cf) == (
        "ComputationFrame with:\n"
        "    0 variable(s) (0 unique refs)\n"
        "    1 operation(s) (0 unique calls)\n"
        "Computational graph:\n"
        "    never_called()"
    )
    cf.print_graph()
    assert capsys.readouterr().out == "never_called()\n"


def test_function_node_without_edges_keeps_its_calls(inc_add: Storage) -> None:
    cf = inc_add.cf(increment).select_nodes(["increment"])
    assert repr(cf).splitlines()[2:] == [
        "    1 operation(s) (5 unique calls)",
        "Computational graph:",
        "    increment()",
    ]


def test_unnamed_outputs_are_ordered_by_position(storage: Storage) -> None:
    @op
    def many(x: int) -> tuple:
        return tuple(range(x, x + 11))

    with storage:
        many(0)
    lhs = storage.cf(many).get_graph_desc().split(" = ")[0]
    assert lhs == ", ".join(f"var_{i}@output_{i}" for i in range(11))


def test_repr_html_is_escaped_and_self_contained(storage: Storage) -> None:
    with storage:
        r = increment(1)
    html_text = storage.cf({"<a&b>": [r]})._repr_html_()
    assert "&lt;a&amp;b&gt;" in html_text
    assert "<a&b>" not in html_text
    assert "1 variable(s) (1 unique refs)" in html_text
    assert "<pre" in html_text and "http" not in html_text


def test_repr_html_contains_the_graph(inc_add: Storage) -> None:
    html_text = inc_add.cf(increment)._repr_html_()
    assert ">y@y = increment(x=x)</pre>" in html_text
    assert "5 unique calls" in html_text


def test_key_completions_are_the_node_names(inc_add: Storage) -> None:
    assert inc_add.cf(increment)._ipython_key_completions_() == ["increment", "x", "y"]


# ============================================================================ stats and info


def test_var_stats(inc_add: Storage) -> None:
    stats = inc_add.cf(increment).expand_all().get_var_stats()
    expected = pd.DataFrame(
        {
            "name": ["x", "y", "w"],
            "num_values": [5, 5, 3],
            "num_sources": [5, 0, 0],
            "num_sinks": [0, 2, 3],
            "in_degree": [0, 1, 1],
            "out_degree": [2, 1, 0],
        }
    )
    assert stats["name"].tolist() == expected["name"].tolist()
    pd.testing.assert_frame_equal(stats.drop(columns="name"), expected.drop(columns="name"))


def test_func_stats(inc_add: Storage) -> None:
    stats = inc_add.cf(increment).expand_all().get_func_stats()
    assert stats.to_dict("list") == {
        "name": ["increment", "add"],
        "op": ["increment", "add"],
        "num_calls": [5, 3],
        "in_degree": [1, 2],
        "out_degree": [1, 1],
    }
    assert str(stats["num_calls"].dtype) == "int64"


def test_stats_of_an_empty_frame_have_columns(storage: Storage) -> None:
    cf = storage.cf(never_called)
    assert cf.get_var_stats().empty
    assert list(cf.get_var_stats().columns)[:2] == ["name", "num_values"]
    assert cf.get_func_stats().to_dict("list") == {
        "name": ["never_called"],
        "op": ["never_called"],
        "num_calls": [0],
        "in_degree": [0],
        "out_degree": [0],
    }


def test_info_prints_summary_graph_and_tables(inc_add: Storage, capsys: Any) -> None:
    inc_add.cf(increment).expand_all().info()
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "ComputationFrame with 3 variable(s) (13 unique refs), 2 operation(s) (8 unique calls)"
    )
    assert out[1:4] == [
        "Computational graph:",
        "    y@y = increment(x=x)",
        "    w@w = add(y=y, z=x)",
    ]
    variables = out.index("Variables:")
    operations = out.index("Operations:")
    var_rows = [line.split() for line in out[variables + 3 : operations]]
    assert var_rows == [["x", "5", "5", "0"], ["y", "5", "0", "2"], ["w", "3", "0", "3"]]
    func_rows = [line.split() for line in out[operations + 3 :]]
    assert func_rows == [["increment", "increment", "5"], ["add", "add", "3"]]


def test_info_of_an_empty_function_node(storage: Storage, capsys: Any) -> None:
    storage.cf(never_called).info()
    out = capsys.readouterr().out
    assert "    never_called()" in out
    assert "Variables:\n    (none)\n" in out


def test_var_info(inc_add: Storage, capsys: Any) -> None:
    inc_add.cf(increment).expand_all().var_info("y")
    assert capsys.readouterr().out.splitlines() == [
        "Variable y with 5 value(s)",
        "Sources: 0 value(s) with no creator call in the CF",
        "Sinks: 2 value(s) with no consumer call in the CF",
        "Creator ops: y=increment::y (5 calls)",
        "Consumer ops: add(y=y, ...) (3 calls)",
    ]


def test_var_info_of_a_source_variable_with_two_consumers(inc_add: Storage, capsys: Any) -> None:
    inc_add.cf(increment).expand_all().var_info("x")
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Variable x with 5 value(s)"
    assert out[1] == "Sources: 5 value(s) with no creator call in the CF"
    assert out[3] == "Creator ops: (none)"
    assert out[4] == "Consumer ops: add(z=x, ...) (3 calls) | increment(x=x, ...) (5 calls)"


def test_func_info(inc_add: Storage, capsys: Any) -> None:
    inc_add.cf(increment).expand_all().func_info("add")
    assert capsys.readouterr().out.splitlines() == [
        "Operation add (op 'add') with 3 call(s)",
        "Inputs:",
        "    y=y (3 calls, 3 values)",
        "    z=x (3 calls, 3 values)",
        "Outputs:",
        "    w@w (3 calls, 3 values)",
    ]


def test_func_info_of_a_node_without_calls(storage: Storage, capsys: Any) -> None:
    storage.cf(never_called).func_info("never_called")
    assert capsys.readouterr().out.splitlines() == [
        "Operation never_called (op 'never_called') with 0 call(s)",
        "Inputs: (none)",
        "Outputs: (none)",
    ]


def test_func_info_shows_recorded_versions(inc_add: Storage, capsys: Any) -> None:
    cf = inc_add.cf(add)
    keys = sorted(cf.fs["add"])
    # versioned storage is not available yet: record versions on the indexed calls directly
    for i, key in enumerate(keys):
        call = cf.index.calls[key]
        cf.index.calls[key] = _replaced(
            call, semantic_version="sem1" if i < 2 else "sem2", content_version=f"c{i}"
        )
    cf.func_info("add")
    out = capsys.readouterr().out
    assert "Versions:\n" in out
    assert "semantic sem1, content c0: 1 call" in out
    assert "semantic sem2, content c2: 1 call" in out


def test_func_info_without_versions_has_no_version_section(inc_add: Storage, capsys: Any) -> None:
    inc_add.cf(add).func_info("add")
    assert "Version" not in capsys.readouterr().out


def test_info_with_nodes_prints_their_info(inc_add: Storage, capsys: Any) -> None:
    inc_add.cf(increment).expand_all().info("w", "increment")
    out = capsys.readouterr().out
    assert out.startswith("Variable w with 3 value(s)\n")
    assert "Creator ops: w=add::w (3 calls)" in out
    assert "\n\nOperation increment (op 'increment') with 5 call(s)\n" in out


def test_info_of_unknown_nodes_raises(inc_add: Storage, capsys: Any) -> None:
    cf = inc_add.cf(increment)
    with pytest.raises(ValueError, match="'nope' not found"):
        cf.info("x", "nope")
    with pytest.raises(ValueError, match="variable 'increment' not found"):
        cf.var_info("increment")
    with pytest.raises(ValueError, match="function 'x' not found"):
        cf.func_info("x")
    assert capsys.readouterr().out == ""


# ============================================================================ DOT source


def test_dot_source_nodes_and_edges(inc_add: Storage) -> None:
    source = inc_add.cf(increment).expand_all().get_dot_source()
    assert source.startswith("digraph ComputationFrame {\n")
    assert "rankdir=TB" in source
    node_lines = [line.strip() for line in source.splitlines() if " [shape=" in line]
    assert [line.split(" ")[0] for line in node_lines] == [
        '"x"',
        '"increment"',
        '"y"',
        '"add"',
        '"w"',
    ]
    assert "5 values" in node_lines[0] and "rounded" in node_lines[0]
    assert "@op:add" in node_lines[3] and "3 calls" in node_lines[3]
    edges = [line.strip() for line in source.splitlines() if " -> " in line]
    assert edges == [
        '"add" -> "w" [label="w"];',
        '"increment" -> "y" [label="y"];',
        '"x" -> "add" [label="z"];',
        '"x" -> "increment" [label="x"];',
        '"y" -> "add" [label="y"];',
    ]


def test_verbose_dot_source_has_counts(inc_add: Storage) -> None:
    source = inc_add.cf(increment).expand_all().get_dot_source(verbose=True)
    assert "5 values (5 sources)" in source
    assert "5 values (2 sinks)" in source
    assert '"x" -> "add" [label="z\\n(3 values)"];' in source


def test_make_list_edge_is_starred(storage: Storage) -> None:
    with storage:
        result = average([1, 2, 3])
    source = storage.cf(result).expand_back(recursive=True).get_dot_source()
    assert '"elts" -> "__make_list__" [label="*elts"];' in source


def test_orientation_and_its_validation(inc_add: Storage) -> None:
    cf = inc_add.cf(increment)
    assert "rankdir=LR" in cf.get_dot_source(orientation="LR")
    with pytest.raises(ValueError, match="orientation must be one of TB, LR"):
        cf.draw(orientation="sideways")


def test_print_dot(inc_add: Storage, capsys: Any) -> None:
    assert inc_add.cf(increment).draw(print_dot=True) is None  # as the original
    assert capsys.readouterr().out == inc_add.cf(increment).get_dot_source() + "\n"


def test_draw_without_path_needs_no_graphviz(inc_add: Storage, monkeypatch: Any) -> None:
    monkeypatch.setenv("PATH", "")
    assert inc_add.cf(increment).draw() is None  # a script: nowhere to show it
    assert inc_add.cf(increment).draw(show_how="none") is None


def test_dot_extension_writes_the_source(
    inc_add: Storage, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("PATH", "")
    cf = inc_add.cf(increment)
    cf.draw(path=tmp_path / "g.gv")
    assert (tmp_path / "g.gv").read_text(encoding="utf-8") == cf.get_dot_source()


def test_unknown_extension_is_a_clear_error(inc_add: Storage, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unsupported extension '\.docx'; use one of \.svg"):
        inc_add.cf(increment).draw(path=tmp_path / "g.docx")
    assert not (tmp_path / "g.docx").exists()


def test_unknown_show_how_is_an_error(inc_add: Storage) -> None:
    with pytest.raises(ValueError, match="show_how must be one of none, inline"):
        inc_add.cf(increment).draw(show_how="hologram")


def test_missing_dot_says_how_to_install(
    inc_add: Storage, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(FeatureUnavailableError) as info:
        inc_add.cf(increment).draw(path=tmp_path / "g.svg")
    message = str(info.value)
    assert "apt-get install graphviz" in message
    assert "brew install graphviz" in message
    assert "conda install graphviz" in message
    assert isinstance(info.value, RuntimeError)
    assert not (tmp_path / "g.svg").exists()


def test_missing_dot_when_which_finds_nothing(
    inc_add: Storage, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr(display_module.shutil, "which", lambda name: None)
    with pytest.raises(FeatureUnavailableError, match="graphviz"):
        inc_add.cf(increment).draw(path=tmp_path / "g.png")


# ============================================================================ pictures


@needs_dot
def test_draw_svg(inc_add: Storage, tmp_path: Path) -> None:
    path = tmp_path / "cf.svg"
    assert inc_add.cf(increment).expand_all().draw(path=path) is None
    texts = _svg_texts(path)
    assert {"x", "y", "w", "increment", "add", "@op:add", "3 calls", "5 values"} <= texts


@needs_dot
def test_draw_png(inc_add: Storage, tmp_path: Path) -> None:
    path = tmp_path / "cf.PNG"
    inc_add.cf(increment).draw(path=str(path), verbose=True)
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@needs_dot
def test_draw_pdf(inc_add: Storage, tmp_path: Path) -> None:
    path = tmp_path / "cf.pdf"
    inc_add.cf(increment).draw(path=path)
    assert path.read_bytes().startswith(b"%PDF")


@needs_dot
def test_draw_cycle_and_empty_node(feedback: tuple[Storage, Any], tmp_path: Path) -> None:
    storage, final = feedback
    storage.cf(final).expand_back(recursive=True).draw(path=tmp_path / "loop.svg", verbose=True)
    assert {"v", "x", "scale", "3 calls"} <= _svg_texts(tmp_path / "loop.svg")
    storage.cf(never_called).draw(path=tmp_path / "empty.svg", verbose=True)
    assert {"never_called", "0 calls"} <= _svg_texts(tmp_path / "empty.svg")


@needs_dot
def test_draw_quotes_awkward_names(storage: Storage, tmp_path: Path) -> None:
    with storage:
        r = increment(1)
    name = 'say "hi" <&> \\'
    storage.cf({name: [r]}).draw(path=tmp_path / "odd.svg")
    assert name in _svg_texts(tmp_path / "odd.svg")


@needs_dot
def test_render_dot_reports_graphviz_errors() -> None:
    with pytest.raises(RuntimeError, match="dot -Tsvg' failed"):
        render_dot("digraph {", "svg")


@needs_dot
def test_inline_display_uses_ipython(inc_add: Storage, monkeypatch: Any) -> None:
    ipython_display = pytest.importorskip("IPython.display")
    shown: list[Any] = []
    monkeypatch.setattr(ipython_display, "display", shown.append)
    monkeypatch.setattr(display_module, "_in_ipython", lambda: True)
    inc_add.cf(increment).draw(show_how="inline")
    assert len(shown) == 1 and isinstance(shown[0], ipython_display.SVG)
    assert "increment" in shown[0].data


def test_inline_without_ipython_does_nothing(inc_add: Storage, monkeypatch: Any) -> None:
    monkeypatch.setitem(sys.modules, "IPython", None)  # not running under IPython
    monkeypatch.setenv("PATH", "")  # and nothing is rendered either
    assert inc_add.cf(increment).draw(show_how="inline") is None


@needs_dot
@pytest.mark.parametrize("extension", ["jpg", "jpeg", "gif", "webp", "eps"])
def test_draw_any_format_dot_renders(inc_add: Storage, tmp_path: Path, extension: str) -> None:
    path = tmp_path / f"graph.{extension}"
    inc_add.cf(increment).draw(path=path)
    magic = {"jpg": b"\xff\xd8\xff", "jpeg": b"\xff\xd8\xff", "gif": b"GIF8", "eps": b"%!PS"}
    data = path.read_bytes()
    assert data.startswith(magic[extension]) if extension in magic else data[8:12] == b"WEBP"


@needs_dot
def test_draw_shows_the_picture_in_an_ipython_shell(inc_add: Storage, tmp_path: Path) -> None:
    """Under a real IPython shell, draw() (show_how="inline" by default) displays an SVG and
    returns None, so a notebook cell ending in cf.draw() shows the picture, not text."""
    interactive = pytest.importorskip("IPython.core.interactiveshell")
    shell = interactive.InteractiveShell.instance()
    try:
        published: list[dict[str, Any]] = []
        shell.display_pub.publish = lambda data, **kwargs: published.append(data)
        shell.user_ns.update(cf=inc_add.cf(increment))
        result = shell.run_cell("cf.draw(verbose=True)")
        assert result.success and result.result is None
        assert len(published) == 1 and "image/svg+xml" in published[0]
        assert "increment" in published[0]["image/svg+xml"]
        published.clear()
        shell.run_cell(f"cf.draw(path={str(tmp_path / 'g.png')!r})")
        assert list(published[0]) == ["image/png"] or "image/png" in published[0]
    finally:
        interactive.InteractiveShell.clear_instance()


@needs_dot
def test_browser_opens_the_rendered_picture(
    inc_add: Storage, tmp_path: Path, monkeypatch: Any
) -> None:
    opened: list[str] = []
    monkeypatch.setattr(display_module.webbrowser, "open", opened.append)
    path = tmp_path / "cf.svg"
    inc_add.cf(increment).draw(show_how="browser", path=path)
    assert opened == [path.resolve().as_uri()]
