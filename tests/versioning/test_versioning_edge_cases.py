"""Edge cases found by review: properties, decorators, callable globals, inheritance, SysTracer
with tracked helpers, threads."""

from __future__ import annotations

import threading

import pytest

from mandala.errors import VersioningError
from mandala.imports import Storage
from mandala.versioning import SysTracer


def storage_for(project, tmp_path, **kwargs) -> Storage:
    kwargs.setdefault("on_change", "new_version")
    return Storage(tmp_path / "s.db", deps_path=project.root, **kwargs)


def test_a_comment_in_a_tracked_property_is_a_change_decided_by_the_policy(project, tmp_path):
    code = """
        import {log} as log
        from mandala.imports import op, track

        @track
        class C:
            @property
            def k(self):
                return 2

        @op
        def f(x):
            log.record("f", x)
            return C().k * x
        """
    mod = project.write_and_load("m", code)
    with Storage(tmp_path / "s.db", deps_path=project.root, on_change="error") as storage:
        mod.f(3)
    assert f"{project.name('m')}.C.k" in storage.guess_code_state()
    mod = project.write_and_load("m", code.replace("return 2", "return 2  # two"))
    compatible = Storage(tmp_path / "s.db", deps_path=project.root, on_change="compatible")
    with compatible:
        assert compatible.unwrap(mod.f(3)) == 6
    assert len(project.executions("f")) == 1


def test_globals_read_by_a_function_behind_a_wrapping_decorator_are_tracked(project, tmp_path):
    code = """
        import functools
        import {log} as log
        from mandala.imports import op, track

        def deco(fn):
            @functools.wraps(fn)
            def wrapper(*args, **kwargs):
                return fn(*args, **kwargs)
            return wrapper

        FACTOR = {"k": 2}

        @track
        @deco
        def helper(x):
            return x * FACTOR["k"]

        @op
        def f(x):
            log.record("f", x)
            return helper(x)
        """
    mod = project.write_and_load("m", code)
    storage = storage_for(project, tmp_path)
    with storage:
        assert storage.unwrap(mod.f(3)) == 6
    mod.FACTOR["k"] = 10
    with storage:
        assert storage.unwrap(mod.f(3)) == 30


def test_track_refuses_what_it_could_not_find_again(project):
    with pytest.raises(VersioningError, match="functools.wraps"):
        project.write_and_load(
            "m",
            """
            from mandala.imports import track

            def deco(fn):
                def wrapper(*args):
                    return fn(*args)
                return wrapper

            @track
            @deco
            def helper(x):
                return x
            """,
        )
    with pytest.raises(VersioningError, match="lambda"):
        project.write_and_load("n", "from mandala.imports import track\nSQ = track(lambda x: x)\n")


def test_callable_globals_are_values_and_partials_of_untracked_code_are_refused(project, tmp_path):
    code = """
        import functools, operator
        import {log} as log
        from mandala.imports import op

        MUL = functools.partial(operator.mul, 2)

        def helper(k, x):
            return k * x

        TRIPLE = functools.partial(helper, 3)

        @op
        def f(x):
            log.record("f", x)
            return MUL(x)

        @op
        def g(x):
            return TRIPLE(x)
        """
    mod = project.write_and_load("m", code)
    storage = storage_for(project, tmp_path)
    with storage:
        assert storage.unwrap(mod.f(3)) == 6
    mod = project.write_and_load("m", code.replace("operator.mul, 2", "operator.mul, 10"))
    with storage:
        assert storage.unwrap(mod.f(3)) == 30
    with pytest.raises(VersioningError, match="helper .* not tracked"), storage:
        mod.g(1)


def test_an_instance_of_a_tracked_class_is_hashed_as_a_value(project, tmp_path):
    code = """
        from mandala.imports import op, track

        @track
        class Scaler:
            def __init__(self, k):
                self.k = k

            def __call__(self, x):
                return x * self.k

        SCALER = Scaler(2)

        @op
        def f(x):
            return SCALER(x)
        """
    mod = project.write_and_load("m", code)
    storage = storage_for(project, tmp_path)
    with storage:
        assert storage.unwrap(mod.f(3)) == 6
    mod.SCALER.k = 10
    with storage:
        assert storage.unwrap(mod.f(3)) == 30


def test_a_tracked_class_with_an_untracked_project_base_is_refused(project, tmp_path):
    mod = project.write_and_load(
        "m",
        """
        from mandala.imports import op, track

        class Base:
            def compute(self, x):
                return x * 2

        @track
        class Child(Base):
            def run(self, x):
                return self.compute(x)

        @op
        def f(x):
            return Child().run(x)
        """,
    )
    storage = storage_for(project, tmp_path)
    with pytest.raises(VersioningError, match="base class Base .* not"), storage:
        mod.f(1)


def test_sys_tracer_with_tracked_helpers_nested_ops_and_plain_decorators(project, tmp_path):
    code = """
        import {log} as log
        from mandala.imports import op, track

        def deco(fn):
            def wrapper(*args):
                return fn(*args)
            return wrapper

        def inner(x):
            return x + 1

        @deco
        def wrapped(x):
            return x * 2

        @track
        def tracked(x):
            return inner(x)

        @op
        def g(x):
            return inner(x)

        @op
        def f(x):
            log.record("f", x)
            return tracked(x) + g(x) + wrapped(x)
        """
    mod = project.write_and_load("m", code)
    storage = storage_for(project, tmp_path, tracer_impl=SysTracer)
    with storage:
        assert storage.unwrap(mod.f(3)) == 14
    mod = project.write_and_load("m", code.replace("x * 2", "x * 5"))
    with storage:
        assert storage.unwrap(mod.f(3)) == 23
    mod = project.write_and_load("m", code.replace("x * 2", "x * 5").replace("x + 1", "x + 2"))
    with storage:
        assert storage.unwrap(mod.f(3)) == 25
    assert len(project.executions("f")) == 3


def test_threads_share_a_versioned_storage(project, tmp_path):
    source = "from mandala.imports import op, track\n"
    for i in range(100):
        source += f"@track\ndef h{i}(x):\n    return x + {i}\n"
    source += "HS = [" + ",".join(f"h{i}" for i in range(100)) + "]\n"
    source += "@op\ndef f(i, x):\n    return HS[i](x)\n"
    mod = project.write_and_load("m", source)
    storage = storage_for(project, tmp_path)
    errors: list[BaseException] = []
    stop = threading.Event()

    def enter_and_leave() -> None:
        try:
            while not stop.is_set():
                with storage:
                    pass
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    def compute(offset: int) -> None:
        try:
            with storage:
                for i in range(100):
                    mod.f(i, offset)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=enter_and_leave)] + [
        threading.Thread(target=compute, args=(k,)) for k in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads[1:]:
        thread.join()
    stop.set()
    threads[0].join()
    assert errors == []
    assert storage.backend.upkeep.counts().calls == 200


def test_a_decorator_applied_over_track_is_a_dependency(project, tmp_path):
    code = """
        import {log} as log
        from mandala.imports import op, track

        def deco(fn):
            def wrapper(x):
                return fn(x) + 1
            return wrapper

        @deco
        @track
        def helper(x):
            return x * 2

        @op
        def f(x):
            log.record("f", x)
            return helper(x)
        """
    mod = project.write_and_load("m", code)
    storage = storage_for(project, tmp_path)
    with storage:
        assert storage.unwrap(mod.f(3)) == 7
    state = storage.guess_code_state()
    assert {f"{project.name('m')}.deco", f"{project.name('m')}.helper"} <= set(state)
    mod = project.write_and_load("m", code.replace("fn(x) + 1", "fn(x) + 2"))
    with storage:
        assert storage.unwrap(mod.f(3)) == 8
    mod = project.write_and_load(
        "m", code.replace("fn(x) + 1", "fn(x) + 2").replace("x * 2", "x * 3")
    )
    with storage:
        assert storage.unwrap(mod.f(3)) == 11
    assert len(project.executions("f")) == 3
