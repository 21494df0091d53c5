"""The public namespace (docs/compatibility.md §0, §h) and the absence of import side effects (docs/design.md, Conventions)."""

from __future__ import annotations

import json

import pytest

DOCUMENTED_NAMES = [
    "Storage",
    "op",
    "Ignore",
    "NewArgDefault",
    "wrap_atom",
    "MList",
    "MDict",
    "MSet",
    "track",
    "noop",
    "ValuePointer",
]

HEAVY_MODULES = [
    "pandas",
    "torch",
    "dask",
    "graphviz",
    "psycopg",
    "rich",
    "IPython",
    "tqdm",
    "pyarrow",
]


def test_star_import_gives_every_documented_name() -> None:
    namespace: dict[str, object] = {}
    exec("from mandala.imports import *", namespace)
    missing = [name for name in DOCUMENTED_NAMES if name not in namespace]
    assert missing == []


def test_documented_names_are_the_working_objects() -> None:
    import mandala.imports as api
    from mandala.engine.op import Op
    from mandala.storage import Storage

    assert api.Storage is Storage
    assert isinstance(api.op(lambda x: x), Op)
    assert api.Ignore(3).value == 3
    assert api.NewArgDefault(4).value == 4
    pointer = api.ValuePointer("data-v1", [1, 2])
    assert (pointer.id, pointer.obj) == ("data-v1", [1, 2])
    ref = api.wrap_atom(5)
    assert (ref.obj, ref.in_memory) == (5, True)


def _helper(x: int) -> int:
    return x * 3


def test_track_keeps_the_function_usable_outside_versioned_calls() -> None:
    from mandala.imports import track

    helper = _helper
    tracked = track(helper)
    assert tracked(2) == 6
    assert tracked.__wrapped__ is helper and tracked.__name__ == "_helper"
    assert track(tracked) is tracked


def test_all_lists_only_existing_names() -> None:
    import mandala.imports as api

    assert set(DOCUMENTED_NAMES) <= set(api.__all__)
    for name in api.__all__:
        assert hasattr(api, name), name


def test_utils_helpers() -> None:
    from mandala.imports import wrap_atom
    from mandala.utils import deserialize, get_content_hash, serialize

    value = {"a": [1, 2.5, "x"], "b": (None, True)}
    assert deserialize(serialize(value)) == value
    digest = get_content_hash(value)
    assert isinstance(digest, str) and len(digest) == 32
    int(digest, 16)  # hex
    assert digest == wrap_atom(value).cid
    assert get_content_hash({"b": (None, True), "a": [1, 2.5, "x"]}) == digest
    assert get_content_hash(1) != get_content_hash(True) != get_content_hash(1.0)
    assert get_content_hash(1) != get_content_hash(1.0)


def test_utils_mock_input_answers_in_turn() -> None:
    from mandala.utils import mock_input

    fake = mock_input(["y", "n"])
    assert [fake("?"), fake("?")] == ["y", "n"]
    with pytest.raises(EOFError):
        fake("?")


_PROBE = """
import json, logging, sys
root = logging.getLogger()
before = (list(root.handlers), root.level)
import {module}
after = (list(root.handlers), root.level)
print(json.dumps({{
    "modules": sorted(m for m in {heavy!r} if m in sys.modules),
    "root_handlers_changed": before != after,
    "mandala_handlers": [type(h).__name__ for h in logging.getLogger("mandala").handlers],
}}))
"""


@pytest.mark.parametrize("module", ["mandala", "mandala.imports", "mandala.utils"])
def test_import_has_no_side_effects(module: str, snippet) -> None:
    result = snippet(_PROBE.format(module=module, heavy=HEAVY_MODULES))
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"modules": [], "root_handlers_changed": False, "mandala_handlers": []}
    assert result.stderr == ""


def test_import_prints_nothing(snippet) -> None:
    result = snippet("import mandala, mandala.imports, mandala.utils")
    assert (result.stdout, result.stderr) == ("", "")
