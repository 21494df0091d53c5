"""Derived ids: how refs, calls and collections get their content and history keys.

Every preimage starts with a domain tag (``b"atom-history"``, ``b"call"``, ...) so that keys of
different kinds can never collide, and names are length-prefixed so that no two different
(name, key) sequences share a preimage. The scheme is documented in ``docs/hashing.md`` and pinned
by golden tests; changing any line here changes every stored id.

The two ids of a ref (see docs/design.md, Data model):
- the *content key* says what a value is (hash of its canonical bytes, ``values.content_key``);
- the *history key* says how it was computed: a raw value's history derives from its content,
  an op output's from the call that produced it and the output name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from mandala.hashing.digest import digest

__all__ = [
    "op_key",
    "atom_history_key",
    "call_key",
    "output_history_key",
    "list_key",
    "dict_key",
    "set_key",
    "pointer_key",
    "code_content_key",
    "global_content_key",
    "version_key",
    "UNKNOWN_GLOBAL_CONTENT",
    "pending_content_key",
]

_ATOM_HISTORY = b"mandala:atom-history\x00"
_OP = b"mandala:op\x00"
_CALL = b"mandala:call\x00"
_OUTPUT = b"mandala:output\x00"
_LIST = b"mandala:list\x00"
_DICT = b"mandala:dict\x00"
_SET = b"mandala:set\x00"
_POINTER = b"mandala:pointer\x00"
_PENDING = b"mandala:pending\x00"
_SEMANTIC = b"\x00semantic\x00"
_CODE = b"mandala:code\x00"
_GLOBAL = b"mandala:global\x00"
_VERSION = b"mandala:version\x00"


_NAME_CACHE: dict[str, bytes] = {}


def _name(name: str) -> bytes:
    """Length-prefixed UTF-8 name; memoized, since ops reuse a few names for millions of calls."""
    encoded = _NAME_CACHE.get(name)
    if encoded is None:
        raw = name.encode("utf-8")
        encoded = len(raw).to_bytes(4, "little") + raw
        if len(_NAME_CACHE) < 100_000:
            _NAME_CACHE[name] = encoded
    return encoded


def op_key(name: str, version: int) -> bytes:
    """Key of an op's identity: its name and its declared version (0 unless set)."""
    return digest(_OP + _name(name) + int(version).to_bytes(8, "little", signed=True))


def atom_history_key(content: bytes) -> bytes:
    """History key of a value that entered the store as a raw input (no producing call)."""
    return digest(_ATOM_HISTORY + content)


def call_key(
    op: bytes, inputs: Iterable[tuple[str, bytes]], semantic_version: str | None = None
) -> bytes:
    """Key of a call from the op key and (input name, input key) pairs.

    With the inputs' history keys this is the call's history key; with their content keys, its
    content key. The pairs are sorted by name here, so callers may pass them in any order. The
    semantic version (from versioning) is appended when present, so that cosmetic code changes
    keep the ids while breaking changes give new ones.
    """
    parts = [_CALL, op]
    for name, key in sorted(inputs):
        parts += (_NAME_CACHE.get(name) or _name(name), key)
    if semantic_version is not None:
        parts.append(_SEMANTIC)
        parts.append(semantic_version.encode("ascii"))
    return digest(b"".join(parts))


def output_history_key(call_history: bytes, output_name: str) -> bytes:
    """History key of the output ``output_name`` of the call with history key ``call_history``."""
    return digest(_OUTPUT + call_history + _name(output_name))


def list_key(element_keys: Iterable[bytes]) -> bytes:
    """Key of a list from its elements' keys (content or history), in order."""
    keys = list(element_keys)
    return digest(_LIST + len(keys).to_bytes(8, "little") + b"".join(keys))


def dict_key(items: Mapping[str, bytes]) -> bytes:
    """Key of a str-keyed dict from its values' keys; independent of insertion order."""
    parts = [_DICT, len(items).to_bytes(8, "little")]
    for name in sorted(items):
        parts.append(_name(name))
        parts.append(items[name])
    return digest(b"".join(parts))


def set_key(element_keys: Iterable[bytes]) -> bytes:
    """Key of a set from its elements' keys; independent of iteration order."""
    keys = sorted(set(element_keys))
    return digest(_SET + len(keys).to_bytes(8, "little") + b"".join(keys))


def pointer_key(pointer_content: bytes) -> bytes:
    """Key of a ``ValuePointer``: derived from the content key of its id, never of its object."""
    return digest(_POINTER + pointer_content)


def code_content_key(source: str) -> bytes:
    """Content key of a function's (or class's) source text, as normalized by versioning."""
    return digest(_CODE + source.encode("utf-8"))


def global_content_key(value_content: bytes) -> bytes:
    """Content key of a global variable from the content key of its value."""
    return digest(_GLOBAL + value_content)


UNKNOWN_GLOBAL_CONTENT = digest(_GLOBAL + b"unknown")
"""Content key recorded for a global whose value cannot be hashed (skip_unhashable_globals)."""


def version_key(kind: str, components: Iterable[tuple[str, str, bytes]]) -> bytes:
    """Key of a call's version from its ``(module, qualname, key)`` components.

    ``kind`` is ``"content"`` (keys are the components' content keys: the exact code a call ran)
    or ``"semantic"`` (their semantic keys: equal across compatible changes). The components are
    sorted here, so callers may pass them in any order.
    """
    parts = [_VERSION, _name(kind)]
    for module, qualname, key in sorted(components):
        parts += (_name(module), _name(qualname), key)
    return digest(b"".join(parts))


def pending_content_key(history_key: bytes) -> bytes:
    """Stand-in content key of an output that a parallel block has not computed yet.

    Used only to derive the history id of a call whose inputs are still pending (the content
    ids computed alongside are thrown away); never stored, and it cannot equal a real content
    key or any other id (its own domain tag).
    """
    return digest(_PENDING + history_key)
