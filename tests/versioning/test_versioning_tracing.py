"""What tracing sees: tracked functions and classes, globals, nested ops, SysTracer, deps=."""

from __future__ import annotations

import warnings

import pytest

from mandala.errors import MandalaWarning, VersioningError
from mandala.imports import Storage
from mandala.versioning import SysTracer


def new_storage(project, tmp_path, **kwargs) -> Storage:
    kwargs.setdefault("on_change", "new_version")
    return Storage(tmp_path / "s.db", deps_path=project.root, **kwargs)


def test_an_untracked_project_function_is_an_error_naming_the_fix(project, tmp_path):
    mod = project.write_and_load(
        "m",
        """
        from mandala.imports import op

        def helper(x):
            return x + 1

        @op
        def f(x):
            return helper(x)
        """,
    )
    storage = new_storage(project, tmp_path)
    with pytest.raises(VersioningError) as info, storage:
        mod.f(1)
    message = str(info.value)
    assert "helper" in message and "@track" in message and "deps=" in message
    assert storage.backend.upkeep.counts().calls == 0


def test_library_functions_and_modules_are_not_dependencies(project, tmp_path):
    mod = project.write_and_load(
        "m",
        """
        import math
        from functools import reduce
        from mandala.imports import op

        @op
        def f(xs):
            return reduce(lambda a, b: a + b, [math.sqrt(x) for x in xs])
        """,
    )
    storage = new_storage(project, tmp_path)
    with storage:
        r = mod.f([1, 4, 9])
    assert storage.unwrap(r) == 6.0
    state = storage.guess_code_state()
    assert list(state) == [f"{project.name('m')}.f"]


def test_tracked_classes_are_usable_and_their_methods_are_versioned(project, tmp_path):
    code = """
        import {log} as log
        from mandala.imports import op, track

        @track
        class Model:
            def __init__(self, k):
                self.k = k

            def predict(self, x):
                return x * self.k

            @staticmethod
            def unused():
                return 0

        @op
        def f(x):
            log.record("f", x)
            return Model(3).predict(x)
        """
    mod = project.write_and_load("m", code)
    storage = new_storage(project, tmp_path)
    with storage:
        assert storage.unwrap(mod.f(2)) == 6
    state = storage.guess_code_state()
    assert f"{project.name('m')}.Model.predict" in state
    assert f"{project.name('m')}.Model.unused" not in state  # only what ran
    project.clear()
    mod = project.write_and_load("m", code.replace("return 0", "return 1"))
    with storage:
        mod.f(2)
    assert project.executions() == []  # the method that changed never ran
    mod = project.write_and_load("m", code.replace("x * self.k", "x * self.k + 1"))
    with storage:
        assert storage.unwrap(mod.f(2)) == 7


def test_an_untracked_project_class_is_an_error(project, tmp_path):
    mod = project.write_and_load(
        "m",
        """
        from mandala.imports import op

        class Model:
            def predict(self, x):
                return x

        @op
        def f(x):
            return Model().predict(x)
        """,
    )
    storage = new_storage(project, tmp_path)
    with pytest.raises(VersioningError, match="class Model .* not tracked"), storage:
        mod.f(1)


def test_tracking_a_class_with_data_attributes_is_refused(project):
    with pytest.raises(VersioningError, match="data attributes"):
        project.write_and_load(
            "m",
            """
            from mandala.imports import track

            @track
            class Config:
                rate = 0.1
            """,
        )


def test_a_global_mutated_during_a_call_is_an_error_and_nothing_is_saved(project, tmp_path):
    mod = project.write_and_load(
        "m",
        """
        from mandala.imports import op

        SEEN = []

        @op
        def f(x):
            SEEN.append(x)
            return len(SEEN)
        """,
    )
    storage = new_storage(project, tmp_path)
    with pytest.raises(VersioningError, match="mutated the global"), storage:
        mod.f(1)
    assert storage.backend.upkeep.counts().calls == 0


def test_a_global_assigned_during_a_call_is_an_error_and_the_module_is_unchanged(project, tmp_path):
    mod = project.write_and_load(
        "m",
        """
        from mandala.imports import op

        COUNT = 0

        @op
        def f(x):
            global COUNT
            COUNT = COUNT + 1
            return x
        """,
    )
    storage = new_storage(project, tmp_path)
    with pytest.raises(VersioningError, match="assigned the global"), storage:
        mod.f(1)
    assert mod.COUNT == 0


def test_a_global_changed_between_calls_of_one_block_is_an_error(project, tmp_path):
    mod = project.write_and_load(
        "m",
        """
        from mandala.imports import op

        RATE = 1

        @op
        def f(x):
            return x * RATE
        """,
    )
    storage = new_storage(project, tmp_path)
    changed = pytest.raises(VersioningError, match="changed since the storage context was entered")
    with changed, storage:
        mod.f(1)
        mod.RATE = 2
        mod.f(2)


def test_unhashable_globals_warn_or_raise(project, tmp_path):
    code = """
        import threading
        from mandala.imports import op

        LOCK = threading.Lock()

        @op
        def f(x):
            with LOCK:
                return x
        """
    mod = project.write_and_load("m", code)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with new_storage(project, tmp_path) as storage:
            r = mod.f(1)
    assert storage.unwrap(r) == 1
    assert any("cannot be hashed" in str(w.message) for w in caught)
    strict = Storage(
        tmp_path / "t.db",
        deps_path=project.root,
        skip_unhashable_globals=False,
    )
    with pytest.raises(VersioningError, match="cannot be hashed"), strict:
        mod.f(2)


def test_track_globals_false_ignores_globals(project, tmp_path):
    code = """
        from mandala.imports import op

        RATE = 1

        @op
        def f(x):
            return x * RATE
        """
    mod = project.write_and_load("m", code)
    storage = new_storage(project, tmp_path, track_globals=False)
    with storage:
        mod.f(1)
    assert list(storage.guess_code_state()) == [f"{project.name('m')}.f"]


def test_nested_op_calls_are_traced(project, tmp_path):
    code = """
        import {log} as log
        from mandala.imports import op

        @op
        def inner(x):
            return x + 1

        @op
        def outer(x):
            log.record("outer", x)
            return inner(x) * 2
        """
    mod = project.write_and_load("m", code)
    storage = new_storage(project, tmp_path)
    with storage:
        assert storage.unwrap(mod.outer(1)) == 4
    project.clear()
    mod = project.write_and_load("m", code.replace("x + 1", "x + 2"))
    with storage:
        assert storage.unwrap(mod.outer(1)) == 6
    assert len(project.executions("outer")) == 1


def test_a_helper_reached_through_a_module_attribute_is_seen_with_deps(project, tmp_path):
    project.write_and_load(
        "helpers",
        """
        def double(x):
            return 2 * x
        """,
    )
    code = f"""
        import {{log}} as log
        import {project.name("helpers")} as helpers
        from mandala.imports import op

        @op(deps=[helpers.double])
        def f(x):
            log.record("f", x)
            return helpers.double(x)
        """
    mod = project.write_and_load("m", code)
    storage = new_storage(project, tmp_path)
    with storage:
        mod.f(1)
    project.clear()
    project.write_and_load("helpers", "def double(x):\n    return 3 * x\n")
    mod = project.load("m")
    with storage:
        assert storage.unwrap(mod.f(1)) == 3
    assert len(project.executions("f")) == 1


def test_sys_tracer_needs_no_track_and_sees_module_attribute_calls(project, tmp_path):
    project.write_and_load("helpers", "def double(x):\n    return 2 * x\n")
    code = f"""
        import {{log}} as log
        import {project.name("helpers")} as helpers
        from mandala.imports import op

        def local_helper(x):
            return x + 1

        @op
        def f(x):
            log.record("f", x)
            return helpers.double(local_helper(x))
        """
    mod = project.write_and_load("m", code)
    storage = new_storage(project, tmp_path, tracer_impl=SysTracer)
    with storage:
        assert storage.unwrap(mod.f(1)) == 4
    state = storage.guess_code_state()
    assert f"{project.name('helpers')}.double" in state
    assert f"{project.name('m')}.local_helper" in state
    project.clear()
    project.write_and_load("helpers", "def double(x):\n    return 3 * x\n")
    mod = project.load("m")
    with storage:
        assert storage.unwrap(mod.f(1)) == 6
    assert len(project.executions("f")) == 1


def test_a_compatible_change_that_adds_a_dependency_warns(project, tmp_path):
    code = (
        "from mandala.imports import op, track\n\n"
        "@track\ndef helper(x):\n    return x\n\n"
        "@op\ndef f(x):\n    return BODY\n"
    )
    mod = project.write_and_load("m", code.replace("BODY", "x"))
    storage = new_storage(project, tmp_path, on_change="compatible")
    with storage:
        mod.f(1)
    project.write_and_load("m", code.replace("BODY", "helper(x)"))
    with pytest.warns(MandalaWarning, match="helper"), storage:
        pass


def test_an_exception_in_a_versioned_op_propagates_and_leaves_no_trace(project, tmp_path):
    code = """
        import {log} as log
        from mandala.imports import op

        LIMIT = 3

        @op
        def f(x):
            global LIMIT
            log.record("f", x)
            if x > LIMIT:
                LIMIT = 100  # assigned, then the call fails
                raise ValueError(f"too big: {x}")
            return x
        """
    mod = project.write_and_load("m", code)
    storage = new_storage(project, tmp_path)
    with pytest.raises(ValueError, match="too big: 5"), storage:
        kept = mod.f(1)
        mod.f(5)
    assert storage.unwrap(kept) == 1  # the call before the failure was committed
    assert storage.backend.upkeep.counts().calls == 1
    assert mod.LIMIT == 3
    with storage:  # the failed assignment left nothing behind: LIMIT is 3 for the next calls
        assert storage.unwrap(mod.f(2)) == 2
    with pytest.raises(ValueError, match="too big: 4"), storage:
        mod.f(4)
