"""Parameters of the original (pymandala 0.2) that this library accepts but ignores warn when
given, instead of being silently dropped."""

from __future__ import annotations

import warnings

import pytest

from mandala.imports import Storage, op


@op
def double(x: int) -> int:
    return 2 * x


@pytest.mark.parametrize(
    ("argument", "value"), [("deps_package", "mypackage"), ("strict_tracing", True)]
)
def test_an_ignored_storage_argument_warns(argument: str, value: object) -> None:
    with pytest.warns(DeprecationWarning, match=f"{argument}=.*no effect"):
        Storage(**{argument: value})  # type: ignore[arg-type]


def test_the_defaults_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        Storage(deps_package=None, strict_tracing=False)


def test_an_ignored_call_config_warns_and_the_call_still_runs() -> None:
    storage = Storage()
    with storage, pytest.warns(DeprecationWarning, match="config=.*no effect"):
        result = storage.call(double, (21,), {}, config={"anything": 1})
    assert storage.unwrap(result) == 42
