"""Showing a frame: its graph as text, summaries, notebook HTML, and pictures through graphviz.

Written as a mixin of :class:`~mandala.frames.frame.ComputationFrame`.
"""

from __future__ import annotations

from mandala.frames.graph import FrameGraph

__all__ = ["DisplayMixin"]


class DisplayMixin(FrameGraph):
    """Text, HTML and picture views of ComputationFrame."""

    def get_graph_desc(self) -> str:
        """The graph as text: isolated variables, then one line per function node."""
        lines = []
        isolated = [
            v
            for v in self.sort_nodes(self.vs)
            if not self.in_neighbors(v) and not self.out_neighbors(v)
        ]
        if isolated:
            lines.append(", ".join(isolated))
        for func in self.sort_nodes(self.fs):
            outputs = []
            for label in sorted(self.out[func]):
                targets = sorted(self.out[func][label])
                names = targets[0] if len(targets) == 1 else "(" + " | ".join(targets) + ")"
                outputs.append(f"{names}@{label}")
            inputs = []
            for label in sorted(self.inp[func]):
                sources = sorted(self.inp[func][label])
                names = sources[0] if len(sources) == 1 else "(" + " | ".join(sources) + ")"
                inputs.append(f"{label}={names}")
            call = f"{func}({', '.join(inputs)})"
            lines.append(f"{', '.join(outputs)} = {call}" if outputs else call)
        return "\n".join(lines)

    def print_graph(self) -> None:
        """Print :meth:`get_graph_desc`."""
        print(self.get_graph_desc())  # noqa: T201 - its documented job

    def __repr__(self) -> str:
        refs = len({k for keys in self.vs.values() for k in keys})
        calls = len({k for keys in self.fs.values() for k in keys})
        desc = self.get_graph_desc().replace("\n", "\n    ")
        return (
            f"ComputationFrame with:\n    {len(self.vs)} variable(s) ({refs} unique refs)\n"
            f"    {len(self.fs)} operation(s) ({calls} unique calls)\n"
            f"Computational graph:\n    {desc}"
        )

    def _ipython_key_completions_(self) -> list[str]:
        return sorted(self.nodes)
