"""Which calls recompute when the code they ran changes: edits, reverts, compatible changes."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest

from mandala.errors import ChangeAbortedError, CodeChangeError
from mandala.imports import Storage
from mandala.utils import mock_input
from tests.conftest import POSTGRES_URL

PIPELINE = """
import {log} as log
from mandala.imports import op, track

SCALE = 2

@track
def scale(x):
    return x * SCALE

@track
def shift(x):
    return x + 1

@op
def f(x):
    log.record("f", x)
    if x > 0:
        return scale(x)
    return shift(x)

@op
def g(y):
    log.record("g", y)
    return y - 1
"""


def run_all(storage: Storage, mod, xs=(-2, -1, 1, 2)) -> list:
    with storage:
        outs = [mod.g(mod.f(x)) for x in xs]
    return [storage.unwrap(o) for o in outs]


@pytest.fixture(params=["sqlite", "postgres"])
def location(request, tmp_path: Path) -> str:
    if request.param == "postgres":
        if not POSTGRES_URL:
            pytest.skip("MANDALA_TEST_POSTGRES_URL is not set")
        return request.getfixturevalue("postgres_location")
    return str(tmp_path / "s.db")


def test_each_call_runs_once_and_is_reused_in_a_new_session(project, location):
    mod = project.write_and_load("pipe", PIPELINE)
    storage = Storage(location, deps_path=project.root)
    assert run_all(storage, mod) == [-2, -1, 1, 3]
    assert len(project.executions("f")) == 4 and len(project.executions("g")) == 4
    project.clear()
    assert run_all(storage, mod) == [-2, -1, 1, 3]
    again = Storage(location, deps_path=project.root)
    assert run_all(again, mod) == [-2, -1, 1, 3]
    assert project.executions() == []


def test_a_breaking_change_recomputes_only_the_calls_that_used_the_code(project, tmp_path):
    mod = project.write_and_load("pipe", PIPELINE)
    storage = Storage(tmp_path / "s.db", deps_path=project.root)
    run_all(storage, mod)
    project.clear()
    mod = project.write_and_load("pipe", PIPELINE.replace("return x * SCALE", "return x * 10"))
    with mock.patch("builtins.input", mock_input(["y"])):
        assert run_all(storage, mod) == [-2, -1, 9, 19]
    # scale ran only for x > 0: those f calls recompute, and g for their new outputs
    assert sorted(c[1] for c in project.executions("f")) == [1, 2]
    assert sorted(c[1] for c in project.executions("g")) == [10, 20]


def test_a_compatible_change_keeps_every_call(project, tmp_path):
    mod = project.write_and_load("pipe", PIPELINE)
    storage = Storage(tmp_path / "s.db", deps_path=project.root)
    with storage:
        before = [mod.f(x) for x in (-1, 1)]
    project.clear()
    edited = PIPELINE.replace("return x * SCALE", "return SCALE * x  # same thing")
    mod = project.write_and_load("pipe", edited)
    with mock.patch("builtins.input", mock_input(["n"])), storage:
        after = [mod.f(x) for x in (-1, 1)]
    assert project.executions() == []
    assert [r.hid for r in after] == [r.hid for r in before]


def test_reverting_code_reuses_old_results_without_asking(project, tmp_path):
    mod = project.write_and_load("pipe", PIPELINE)
    storage = Storage(tmp_path / "s.db", deps_path=project.root)
    original = run_all(storage, mod)
    mod = project.write_and_load("pipe", PIPELINE.replace("x + 1", "x + 100"))
    with mock.patch("builtins.input", mock_input(["y"])):
        assert run_all(storage, mod) == [97, 98, 1, 3]
    project.clear()
    mod = project.write_and_load("pipe", PIPELINE)

    def refuse(prompt: str = "") -> str:
        raise AssertionError("asked about a revert")

    with mock.patch("builtins.input", refuse):
        assert run_all(storage, mod) == original
    assert project.executions() == []


def test_a_changed_global_recomputes_the_calls_that_read_it(project, tmp_path):
    mod = project.write_and_load("pipe", PIPELINE)
    storage = Storage(tmp_path / "s.db", deps_path=project.root, on_change="new_version")
    run_all(storage, mod)
    project.clear()
    mod = project.write_and_load("pipe", PIPELINE.replace("SCALE = 2", "SCALE = 3"))
    assert run_all(storage, mod) == [-2, -1, 2, 5]
    assert sorted(c[1] for c in project.executions("f")) == [1, 2]


def test_a_change_to_the_op_itself_recomputes_all_its_calls(project, tmp_path):
    mod = project.write_and_load("pipe", PIPELINE)
    storage = Storage(tmp_path / "s.db", deps_path=project.root, on_change="new_version")
    run_all(storage, mod)
    project.clear()
    mod = project.write_and_load("pipe", PIPELINE.replace("return y - 1", "return y - 2"))
    assert run_all(storage, mod) == [-3, -2, 0, 2]
    assert project.executions("f") == [] and len(project.executions("g")) == 4


def test_abort_leaves_no_context_and_records_nothing(project, tmp_path):
    mod = project.write_and_load("pipe", PIPELINE)
    storage = Storage(tmp_path / "s.db", deps_path=project.root)
    run_all(storage, mod)
    mod = project.write_and_load("pipe", PIPELINE.replace("x + 1", "x + 5"))
    with (
        mock.patch("builtins.input", mock_input(["maybe", "a"])),
        pytest.raises(ChangeAbortedError, match="Aborting commit"),
        storage,
    ):
        pass
    assert not storage.in_context()
    # the change is still undecided: the next entry asks again
    with mock.patch("builtins.input", mock_input(["y"])):
        assert run_all(storage, mod) == [2, 3, 1, 3]


def test_the_prompt_shows_the_diff_and_the_answer(project, tmp_path, capsys):
    mod = project.write_and_load("pipe", PIPELINE)
    storage = Storage(tmp_path / "s.db", deps_path=project.root)
    run_all(storage, mod)
    capsys.readouterr()
    mod = project.write_and_load("pipe", PIPELINE.replace("x + 1", "x + 5"))
    questions: list[str] = []

    def answer(prompt: str = "") -> str:
        questions.append(prompt)
        return "n"

    with mock.patch("builtins.input", answer), storage:
        pass
    out = capsys.readouterr().out
    assert f"CHANGE DETECTED in shift from module {project.name('pipe')}" in out
    assert "-    return x + 1" in out and "+    return x + 5" in out
    assert 'You answered: "n"' in out
    assert "Does this change require recomputation of dependent calls?" in out
    assert questions == [""]  # printed first, then a bare input(), as the original


def test_error_policy_lists_changes_and_affected_calls(project, tmp_path):
    mod = project.write_and_load("pipe", PIPELINE)
    storage = Storage(tmp_path / "s.db", deps_path=project.root, on_change="error")
    run_all(storage, mod)
    mod = project.write_and_load("pipe", PIPELINE.replace("x * SCALE", "x * SCALE * 1"))
    with pytest.raises(CodeChangeError) as info, storage:
        pass
    message = str(info.value)
    assert f"{project.name('pipe')}.scale" in message
    assert "2 stored call(s)" in message and "sync_component" in message
    assert not storage.in_context()


def test_sync_component_decides_without_a_prompt(project, tmp_path):
    mod = project.write_and_load("pipe", PIPELINE)
    storage = Storage(tmp_path / "s.db", deps_path=project.root, on_change="error")
    run_all(storage, mod)
    project.clear()
    mod = project.write_and_load("pipe", PIPELINE.replace("x * SCALE", "SCALE * x"))
    storage.sync_component(mod.scale, is_semantic_change=False)
    assert run_all(storage, mod) == [-2, -1, 1, 3]
    assert project.executions() == []
    mod = project.write_and_load("pipe", PIPELINE.replace("x * SCALE", "SCALE * x + 1"))
    storage.sync_component(mod.scale, is_semantic_change=True)
    assert run_all(storage, mod) == [-2, -1, 2, 4]
    assert sorted(c[1] for c in project.executions("f")) == [1, 2]


def test_no_input_available_gives_advice(project, tmp_path):
    mod = project.write_and_load("pipe", PIPELINE)
    storage = Storage(tmp_path / "s.db", deps_path=project.root)
    run_all(storage, mod)
    project.write_and_load("pipe", PIPELINE.replace("x + 1", "x + 2"))
    with (
        mock.patch("builtins.input", mock_input([])),
        pytest.raises(CodeChangeError, match="on_change="),
        storage,
    ):
        pass


def test_unversioned_and_versioned_ids_differ_and_roots_are_checked(project, tmp_path):
    mod = project.write_and_load("pipe", PIPELINE)
    path = tmp_path / "s.db"
    versioned = Storage(path, deps_path=project.root)
    with versioned:
        a = mod.f(1)
    plain = Storage(path)
    with plain:
        b = mod.f(1)
    assert a.hid != b.hid and len(project.executions("f")) == 2
    other = tmp_path / "elsewhere"
    other.mkdir()
    with pytest.raises(ValueError, match="Found existing versioner with roots"):
        Storage(path, deps_path=other)


@pytest.mark.parametrize(
    "method, args",
    [
        ("versions", ("f",)),
        ("code", ("abc",)),
        ("diff", ("a", "b")),
        ("source_history", ("f",)),
        ("sync_component", ("f", True)),
        ("drop_version", ("abc",)),
        ("get_code", ("abc",)),
        ("get_versioner", ()),
    ],
)
def test_versioning_methods_on_an_unversioned_storage(method, args):
    with pytest.raises(ValueError, match="This storage is not versioned."):
        getattr(Storage(), method)(*args)


def test_the_question_is_shown_when_input_is_patched(project, tmp_path, capsys):
    """Notebooks answer by patching input(): the question must still be printed."""
    mod = project.write_and_load("pipe", PIPELINE)
    storage = Storage(tmp_path / "s.db", deps_path=project.root)
    run_all(storage, mod)
    mod = project.write_and_load("pipe", PIPELINE.replace("return x * SCALE", "return x * 10"))
    capsys.readouterr()
    with mock.patch("builtins.input", mock_input(["y"])):
        run_all(storage, mod)
    shown = capsys.readouterr().out
    assert "Does this change require recomputation of dependent calls?" in shown
    assert 'You answered: "y"' in shown
