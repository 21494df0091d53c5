"""``@op``: the decorator's forms and attributes, and ops called outside a storage context.

docs/compatibility.md §a.1, §a.2 (bug g.1-2 fixed: markers are unwrapped outside a context).
"""

from __future__ import annotations

import pytest

from mandala.errors import OpDefinitionError
from mandala.imports import Ignore, NewArgDefault, Storage, ValuePointer, noop, op, wrap_atom


def test_bare_decorator_keeps_function_metadata() -> None:
    def add(x, y=2):
        """Add two numbers."""
        return x + y

    wrapped = op(add)
    assert wrapped.__name__ == "add"
    assert wrapped.__doc__ == "Add two numbers."
    assert wrapped.__wrapped__ is add
    assert wrapped.__qualname__ == add.__qualname__
    assert wrapped.__module__ == add.__module__
    assert wrapped.name == "add"
    assert wrapped.f is add
    assert wrapped.nout == "auto"
    assert wrapped.output_names is None
    assert tuple(wrapped.ignore_args) == ()
    assert wrapped.version == 0


def test_decorator_with_arguments_records_them() -> None:
    @op(output_names=["q", "r"], nout=2, ignore_args=["verbose"])
    def divmod_op(a, b, verbose=False):
        return divmod(a, b)

    assert divmod_op.name == "divmod_op"
    assert list(divmod_op.output_names) == ["q", "r"]
    assert divmod_op.nout == 2
    assert list(divmod_op.ignore_args) == ["verbose"]
    assert divmod_op.version == 0


def test_decorator_with_empty_parentheses() -> None:
    @op()
    def one():
        return 1

    assert one.name == "one"
    assert one.nout == "auto"
    assert one() == 1


def test_version_keyword_is_recorded() -> None:
    @op(version=3)
    def v():
        return 0

    assert v.version == 3


def test_outside_a_context_an_op_is_the_plain_function() -> None:
    runs = []

    @op
    def inc(x):
        runs.append(x)
        return x + 1

    assert inc(1) == 2
    assert inc(1) == 2  # not memoized: no storage
    assert runs == [1, 1]
    result = inc(41)
    assert type(result) is int and result == 42


def test_outside_a_context_marker_defaults_are_unwrapped() -> None:
    received = []

    @op
    def f(x, y=NewArgDefault(10), z=Ignore("quiet")):  # noqa: B008 - markers are meant as defaults
        received.append((x, y, z))
        return x + y

    assert f(1) == 11
    assert received == [(1, 10, "quiet")]


def test_outside_a_context_passed_markers_are_unwrapped() -> None:
    received = []

    @op
    def f(x, y=0):
        received.append((x, y))
        return x

    f(Ignore(5), y=NewArgDefault(3))
    f(ValuePointer("data", [7, 8]))
    assert received == [(5, 3), ([7, 8], 0)]


def test_outside_a_context_in_memory_refs_are_unwrapped() -> None:
    received = []

    @op
    def f(x):
        received.append(x)
        return x

    f(wrap_atom(12))
    assert received == [12]


def test_plain_call_binding_errors_are_pythons() -> None:
    @op
    def f(x, y):
        return x + y

    with pytest.raises(TypeError, match="missing a required argument|required positional"):
        f(1)
    with pytest.raises(TypeError):
        f(1, 2, 3)


def test_plain_call_with_varargs_and_kwargs() -> None:
    @op
    def f(a, *args, key=0, **kwargs):
        return (a, args, key, kwargs)

    assert f(1, 2, 3, key=4, other=5) == (1, (2, 3), 4, {"other": 5})


def test_noop_outside_any_storage_changes_nothing() -> None:
    @op
    def f(x):
        return x * 2

    with noop():
        assert f(4) == 8


def test_op_in_a_class_body_binds_self() -> None:
    class Model:
        factor = 3

        @op
        def scale(self, x):
            return self.factor * x

    assert Model().scale(2) == 6


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: op(output_names=["x"])(lambda x: x), id="output-clashes-input"),
        pytest.param(lambda: op(lambda output_0: output_0), id="input-named-output_0"),
        pytest.param(lambda: op(nout="many")(lambda x: x), id="nout-bad-string"),
        pytest.param(lambda: op(nout=-1)(lambda x: x), id="nout-negative"),
        pytest.param(lambda: op(nout=1.5)(lambda x: x), id="nout-float"),
        pytest.param(lambda: op(nout=True)(lambda x: x), id="nout-bool"),
        pytest.param(lambda: op(ignore_args=["nope"])(lambda x: x), id="ignore-unknown-param"),
        pytest.param(lambda: op(output_names=["a", "a"])(lambda x: x), id="repeated-output-name"),
        pytest.param(lambda: op(output_names=["a"], nout=2)(lambda x: x), id="nout-vs-names"),
        pytest.param(lambda: op(output_names="ab")(lambda x: x), id="output-names-str"),
    ],
)
def test_declaration_errors_raise_at_decoration(make) -> None:
    with pytest.raises(OpDefinitionError) as info:
        make()
    assert isinstance(info.value, ValueError)
    assert "<lambda>" in str(info.value)  # the message names the op


def test_output_clash_message_names_op_and_output() -> None:
    def train(x, model):
        return x

    with pytest.raises(OpDefinitionError, match=r"'train'.*'model'"):
        op(output_names=["model"])(train)


def test_input_named_output_is_allowed_with_output_names() -> None:
    @op(output_names=["result"])
    def f(output_0):
        return output_0 + 1

    assert f(1) == 2
    storage = Storage()
    with storage:
        r = f(1)
    assert storage.unwrap(r) == 2
    assert list(storage.get_ref_creator(r).outputs) == ["result"]


def test_ignore_unknown_message_names_the_parameter() -> None:
    def f(x, y):
        return x

    with pytest.raises(OpDefinitionError, match="'z'|z"):
        op(ignore_args=["z"])(f)


def test_non_callable_is_rejected() -> None:
    with pytest.raises(OpDefinitionError):
        op(output_names=None)(42)
