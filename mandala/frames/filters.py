"""Filtering a frame by the values (or ids) of its elements: ``isin``, ``where``, comparisons.

A mixin of :class:`~mandala.frames.frame.ComputationFrame`; see ``selection.py`` for how results
stay valid frames.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from mandala.backends.records import KIND_ATOM, KIND_POINTER
from mandala.frames.graph import FrameGraph
from mandala.frames.selection import SelectionMixin, _element_key

__all__ = ["FilterMixin"]


class FilterMixin(SelectionMixin):
    """Value filters of ComputationFrame."""

    # ================================================================== filters

    def _load_ref_values(self, ref_keys: Iterable[bytes]) -> dict[bytes, Any]:
        """Values of refs by history key, loaded set-at-a-time."""
        atoms: dict[bytes, bytes] = {}
        collections: list[bytes] = []
        for key in sorted(set(ref_keys)):
            content_key, kind = self.index.refs[key]
            if kind in (KIND_ATOM, KIND_POINTER):
                atoms[key] = content_key
            else:
                collections.append(key)
        loaded = self.index.load_values(set(atoms.values())) if atoms else {}
        values = {key: loaded[content_key] for key, content_key in atoms.items()}
        if collections:
            unwrapped = self.source.unwrap([self._ref(key) for key in collections])
            values.update(zip(collections, unwrapped))
        return values

    def _filtered(self, accept: Mapping[str, set[bytes]], prune: Iterable[str] = ()) -> Any:
        """Keep the ``accept``-ed refs of some variables; drop the calls that lost a ref, then
        the refs of the ``prune`` variables that lost every call they were connected to."""
        frame = self.copy()
        prune = set(prune)
        before = frame._connected_pairs() if prune else set()
        for var, keep in accept.items():
            frame.vs[var] = set(keep) & self.vs[var]
        frame._drop_incomplete_calls()
        if prune:
            for var, ref in before - frame._connected_pairs():
                if var in prune:
                    frame.vs[var].discard(ref)
        return frame

    def _filter_values(
        self, variables: Iterable[str], test: Callable[[Any], Any], lenient: bool
    ) -> Any:
        variables = sorted(set(variables))
        values = self._load_ref_values(k for v in variables for k in self.vs[v])
        accept: dict[str, set[bytes]] = {}
        for var in variables:
            keep = set()
            for key in self.vs[var]:
                if lenient:
                    try:
                        ok = bool(test(values[key]))
                    except (TypeError, ValueError):
                        ok = False  # not comparable (or an array's ambiguous truth value)
                else:
                    ok = bool(test(values[key]))
                if ok:
                    keep.add(key)
            accept[var] = keep
        return accept

    def isin(self, values: Any, by: str = "val", node_class: str = "var") -> Any:
        """Keep the elements that are in ``values``.

        With ``node_class="var"``, every variable keeps the refs whose value
        (``by="val"``), history id (``"hid"``) or content id (``"cid"``) is in ``values``,
        and every function node keeps the calls adjacent to a kept ref: the calls that made it
        and the calls that took it, as in the original, so that ``cf.isin([v]).delete_calls()``
        deletes the calls that touched ``v``. The refs of the kept calls stay too (their other
        inputs and outputs), so the result is a valid frame: ``df()`` shows those calls. With
        ``node_class="func"``, every function
        node keeps the calls whose history or content id is in ``values``, and the variables
        lose the refs that only those dropped calls touched.

        Raises:
            ValueError: an unknown ``by`` or ``node_class``, or ``by="val"`` for calls.
        """
        if by not in ("val", "hid", "cid"):
            raise ValueError(f"by must be 'val', 'hid' or 'cid', got {by!r}")
        if node_class == "func":
            if by == "val":
                raise ValueError("isin(node_class='func') selects calls by 'hid' or 'cid'")
            wanted = {
                _element_key(v, "history_key" if by == "hid" else "content_key", by) for v in values
            }
            frame = self.copy()
            before = frame._connected_pairs()
            for func, calls in frame.fs.items():
                if by == "hid":
                    frame.fs[func] = calls & wanted
                else:
                    frame.fs[func] = {c for c in calls if self.index.calls[c].content_key in wanted}
            for var, ref in before - frame._connected_pairs():
                frame.vs[var].discard(ref)
            return frame
        if node_class != "var":
            raise ValueError(f"node_class must be 'var' or 'func', got {node_class!r}")
        if by == "val":
            pool = list(values) if isinstance(values, Iterator) else values  # read it once
            accept = self._filter_values(self.vs, lambda value: value in pool, lenient=True)
        else:
            wanted = {
                _element_key(v, "history_key" if by == "hid" else "content_key", by) for v in values
            }
            accept = {}
            for var, refs in self.vs.items():
                if by == "hid":
                    accept[var] = refs & wanted
                else:
                    accept[var] = {r for r in refs if self.index.refs[r][0] in wanted}
        return self._with_adjacent_calls(accept)

    def _with_adjacent_calls(self, accept: Mapping[str, set[bytes]]) -> Any:
        """Keep the ``accept``-ed refs, every call connected to one of them, and the refs of
        those calls."""
        frame = self.copy()
        for var, keep in accept.items():
            frame.vs[var] = set(keep) & self.vs[var]
        kept = {(var, ref) for var, refs in frame.vs.items() for ref in refs}
        for func, calls in self.fs.items():
            frame.fs[func] = {
                c for c in calls if any(pair in kept for pair in self._connected(func, c))
            }
        frame._complete()
        return frame

    def where(self, var: str | Iterable[str] | Callable[[Any], Any], predicate: Any = None) -> Any:
        """Keep the refs of a variable whose value satisfies ``predicate(value)``.

        ``cf.where("y", lambda y: y > 2)`` restricts ``y``; ``cf.where(pred)`` restricts every
        variable. Calls that lost one of their refs are dropped, and so are the refs of the
        *other* variables that lost every call they were connected to: what is left are the
        computations whose restricted values satisfy the predicate. Exceptions raised by the
        predicate propagate.

        Raises:
            ValueError: an unknown variable.
            TypeError: no callable predicate.
        """
        if predicate is None and callable(var):
            predicate, variables = var, sorted(self.vs)
        else:
            variables = [var] if isinstance(var, str) else list(var)  # type: ignore[arg-type]
        if not callable(predicate):
            raise TypeError("where needs a predicate: cf.where('var', lambda value: ...)")
        for name in variables:
            self._require_node(name)
            if name not in self.vs:
                raise ValueError(f"Node {name} is a function node; where filters variables")
        accept = self._filter_values(variables, predicate, lenient=False)
        return self._filtered(accept, prune=set(self.vs) - set(variables))

    def with_versions(self, func: str, versions: str | Iterable[str]) -> Any:
        """Keep the calls of function node ``func`` that ran one of the given code versions.

        ``versions`` are content or semantic version ids (``call.content_version``,
        ``call.semantic_version``, as ``storage.versions(f)`` lists them), or prefixes of at
        least 6 characters. The outputs of the dropped calls go too, and so do their inputs
        that no kept call uses, and everything downstream of what went: the frame keeps the
        computations that went through those versions (and those that never reached ``func``).

        Raises:
            ValueError: an unknown function node, or an id shorter than 6 characters.
        """
        self._require_node(func)
        if func not in self.fs:
            raise ValueError(f"Node {func} is a variable; with_versions filters function nodes")
        wanted = [versions] if isinstance(versions, str) else list(versions)
        short = [v for v in wanted if len(v) < 6]
        if short:
            raise ValueError(f"version ids {short} are too short; give at least 6 characters")
        prefixes = tuple(v.lower() for v in wanted)

        def matches(call_key: bytes) -> bool:
            call = self.index.calls[call_key]
            return any(
                version is not None and version.startswith(prefixes)
                for version in (call.content_version, call.semantic_version)
            )

        connected_before = self._connected_pairs()
        frame = self.copy()
        dropped = {func: {c for c in self.fs[func] if not matches(c)}}
        while any(dropped.values()):
            for name, calls in dropped.items():
                frame.fs[name] -= calls
                for call_key in calls:  # what the dropped calls made goes with them
                    for label, variables in frame.out[name].items():
                        for ref in frame.call_outputs_on(frame.index.calls[call_key], label):
                            for var in variables:
                                frame.vs[var].discard(ref)
            # inputs that only the dropped calls used go too
            for var, ref in connected_before - frame._connected_pairs():
                frame.vs[var].discard(ref)
            before = {name: set(calls) for name, calls in frame.fs.items()}
            frame._drop_incomplete_calls()
            dropped = {name: before[name] - frame.fs[name] for name in frame.fs}
        return frame

    def _compare(self, other: Any, test: Callable[[Any], Any]) -> Any:
        if isinstance(other, FrameGraph):
            raise TypeError(
                "a ComputationFrame compares with a value (cf < 3 keeps the refs whose values are"
                " below 3), not with another frame; use cf1 & cf2 or cf1 - cf2 to combine frames"
            )
        return self._filtered(self._filter_values(self.vs, test, lenient=True))

    def __lt__(self, other: Any) -> Any:
        """``cf < x``: every variable keeps the refs whose value is ``< x`` (values that cannot
        be compared with ``x`` are dropped), with the complete calls among them."""
        return self._compare(other, lambda value: value < other)

    def __le__(self, other: Any) -> Any:
        """``cf <= x``: as ``cf < x``."""
        return self._compare(other, lambda value: value <= other)

    def __gt__(self, other: Any) -> Any:
        """``cf > x``: as ``cf < x``."""
        return self._compare(other, lambda value: value > other)

    def __ge__(self, other: Any) -> Any:
        """``cf >= x``: as ``cf < x``."""
        return self._compare(other, lambda value: value >= other)
