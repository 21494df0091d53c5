"""versions / code / diff / source_history / drop_version, deps_path="__main__", file checks."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mandala.imports import Storage
from mandala.versioning import components
from tests.conftest import run_snippet

CODE = """
import {log} as log
from mandala.imports import op, track

OFFSET = 10

@track
def helper(x):
    return x + OFFSET

@op
def f(x):
    log.record("f", x)
    return helper(x)

@op
def g(y):
    log.record("g", y)
    return y * 2
"""


def two_versions(project, tmp_path):
    mod = project.write_and_load("m", CODE)
    storage = Storage(tmp_path / "s.db", deps_path=project.root, on_change="new_version")
    with storage:
        first = mod.g(mod.f(1))
    mod = project.write_and_load("m", CODE.replace("x + OFFSET", "x - OFFSET"))
    with storage:
        second = mod.g(mod.f(1))
    return storage, mod, first, second


def test_versions_prints_each_version_with_the_code_of_its_dependencies(project, tmp_path, capsys):
    storage, mod, _, _ = two_versions(project, tmp_path)
    capsys.readouterr()
    storage.versions(mod.f)
    out = capsys.readouterr().out
    assert out.count("### Dependencies for version of function f") == 2
    assert "return x + OFFSET" in out and "return x - OFFSET" in out
    assert f'### IN MODULE "{project.name("m")}"' in out and "OFFSET = 10" in out
    storage.versions(mod.f, plain=True)
    assert capsys.readouterr().out.count('Version of "f" from module') == 2


def test_code_and_diff_of_call_versions(project, tmp_path, capsys):
    storage, mod, first, second = two_versions(project, tmp_path)
    call_1 = storage.get_ref_creator(storage.get_ref_creator(first).inputs["y"])
    call_2 = storage.get_ref_creator(storage.get_ref_creator(second).inputs["y"])
    assert call_1.content_version != call_2.content_version
    text = storage.get_code(call_1.content_version, show=False)
    assert "return x + OFFSET" in text and "def f(x):" in text
    capsys.readouterr()
    storage.diff(call_1.content_version, call_2.content_version)
    out = capsys.readouterr().out
    assert "-    return x + OFFSET" in out and "+    return x - OFFSET" in out
    with pytest.raises(ValueError, match="version id 0123456789abcdef not found"):
        storage.get_code("0123456789abcdef")


def test_source_history_marks_the_head(project, tmp_path, capsys):
    storage, mod, _, _ = two_versions(project, tmp_path)
    capsys.readouterr()
    storage.source_history(mod.helper)
    out = capsys.readouterr().out
    assert out.index("x + OFFSET") < out.index("x - OFFSET")
    head = out.index("===HEAD===")
    assert out.index("x - OFFSET") > head > out.index("x + OFFSET")
    assert "breaking change" in out


def test_drop_version_deletes_its_calls_and_their_dependents(project, tmp_path):
    storage, mod, first, second = two_versions(project, tmp_path)
    old_call = storage.get_ref_creator(storage.get_ref_creator(first).inputs["y"])
    assert storage.backend.upkeep.counts().calls == 4
    deleted = storage.drop_version(old_call.content_version)
    assert deleted == 2  # the old f call and the g call that used its output
    assert storage.backend.upkeep.counts().calls == 2
    assert not storage.exists_call(old_call.hid)
    # the current code's calls are untouched and still reused
    project.clear()
    with storage:
        assert storage.unwrap(mod.g(mod.f(1))) == -18
    assert project.executions() == []
    # the history is coherent: reverting to the dropped code recomputes it, silently
    mod = project.write_and_load("m", CODE)
    with storage:
        assert storage.unwrap(mod.g(mod.f(1))) == 22
    assert len(project.executions("f")) == 1
    with pytest.raises(ValueError, match="not found"):
        storage.drop_version("ffffffffffffffff")


def test_unchanged_files_are_not_read_again(project, tmp_path, monkeypatch):
    mod = project.write_and_load("m", CODE)
    path = project.root / f"{project.name('m')}.py"
    old = path.stat().st_mtime_ns - 10_000_000_000  # not "racy": older than 2 s
    import os

    os.utime(path, ns=(old, old))
    storage = Storage(tmp_path / "s.db", deps_path=project.root, on_change="error")
    with storage:
        mod.f(1)
    with storage:  # records the file's signature
        pass
    reads: list = []
    original = components.normalized_source

    def counting(obj):
        reads.append(obj)
        return original(obj)

    monkeypatch.setattr(components, "normalized_source", counting)
    with storage:
        pass
    assert reads == []
    path.write_text(path.read_text().replace("x + OFFSET", "x + OFFSET + 0"))
    with pytest.raises(Exception, match="helper"), storage:
        pass
    assert reads  # the changed file was read


def test_main_script_versioning_in_subprocesses(tmp_path):
    script = tmp_path / "script.py"
    log = tmp_path / "runs.txt"
    body = textwrap.dedent(
        f"""
        from mandala.imports import Storage, op, track

        @track
        def helper(x):
            return x + 1

        @op
        def f(x):
            with open({str(log)!r}, "a") as out:
                out.write(f"{{x}}\\n")
            return helper(x)

        storage = Storage({str(tmp_path / "s.db")!r}, deps_path="__main__",
                          on_change="new_version")
        with storage:
            print([storage.unwrap(f(x)) for x in range(3)])
        """
    )
    script.write_text(body)
    # ``python script.py`` in a fresh interpreter, as a user runs it
    runner = "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    first = run_snippet(runner, str(script))
    assert first.stdout.strip() == "[1, 2, 3]"
    assert len(log.read_text().split()) == 3
    run_snippet(runner, str(script))
    assert len(log.read_text().split()) == 3  # nothing recomputed
    script.write_text(body.replace("x + 1", "x + 5"))
    third = run_snippet(runner, str(script))
    assert third.stdout.strip() == "[5, 6, 7]"
    assert len(log.read_text().split()) == 6


def test_roots_path_is_resolved(project, tmp_path):
    linked = Path(tmp_path / "link")
    linked.symlink_to(project.root)
    mod = project.write_and_load("m", CODE)
    storage = Storage(tmp_path / "s.db", deps_path=linked, on_change="error")
    with storage:
        mod.f(1)
    assert f"{project.name('m')}.helper" in storage.guess_code_state()


def test_a_frame_restricted_to_a_version_keeps_its_computations(project, tmp_path):
    storage, mod, first, second = two_versions(project, tmp_path)
    old_f = storage.get_ref_creator(storage.get_ref_creator(first).inputs["y"])
    new_f = storage.get_ref_creator(storage.get_ref_creator(second).inputs["y"])
    cf = storage.cf(mod.g).expand_back(recursive=True)
    assert len(cf.df()) == 2
    old = cf.with_versions("f", old_f.content_version)
    table = old.df(values="objs")
    assert len(table) == 1 and table["var_0"].tolist() == [22]
    by_semantic = cf.with_versions("f", [new_f.semantic_version[:8]])
    assert by_semantic.df(values="objs")["var_0"].tolist() == [-18]
    assert len(cf.with_versions("f", "ffffffff").df()) == 0
    with pytest.raises(ValueError, match="too short"):
        cf.with_versions("f", "ab")


def test_two_processes_versioning_one_store_at_once(project, tmp_path):
    import os
    import subprocess
    import sys

    project.write("m", CODE)
    db = tmp_path / "s.db"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path[:0] = [{str(project.root)!r}, {str(project.log_dir)!r}]
        import {project.name("m")} as mod
        from mandala.imports import Storage
        storage = Storage({str(db)!r}, deps_path={str(project.root)!r}, on_change="error")
        for _ in range(3):
            with storage:
                outs = [mod.g(mod.f(x)) for x in range(20)]
            assert [storage.unwrap(o) for o in outs] == [2 * (x + 10) for x in range(20)]
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = [
        subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    storage = Storage(db, deps_path=project.root, on_change="error")
    state = storage.guess_code_state()
    assert sorted(state) == sorted(
        f"{project.name('m')}.{n}" for n in ("f", "g", "helper", "OFFSET")
    )
    assert storage.backend.upkeep.counts().calls == 40  # each call stored once
    mod = project.load("m")
    project.clear()
    with storage:
        [mod.g(mod.f(x)) for x in range(20)]
    assert project.executions() == []
