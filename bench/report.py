"""Result rows, the printed table and the JSON file."""

from __future__ import annotations

import json
import math
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Target", "Row", "format_table", "write_json", "fmt"]


@dataclass(frozen=True)
class Target:
    op: str  # "<=" or ">="
    value: float

    def passed(self, measured: float) -> bool:
        return measured <= self.value if self.op == "<=" else measured >= self.value

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"


@dataclass
class Row:
    """One measured figure: mandala's median, the baselines' medians, the target."""

    workload: str
    metric: str
    samples: list[float]
    baselines: dict[str, list[float]] = field(default_factory=dict)
    target: Target | None = None
    note: str = ""

    @property
    def value(self) -> float:
        return _median(self.samples)

    def baseline_values(self) -> dict[str, float]:
        return {name: _median(s) for name, s in self.baselines.items()}

    @property
    def ratio(self) -> float | None:
        """mandala / the first baseline listed (in the metric's unit)."""
        values = list(self.baseline_values().values())
        if not values or not values[0] or math.isnan(self.value):
            return None
        return self.value / values[0]

    @property
    def result(self) -> str:
        if self.target is None:
            return ""
        return "pass" if self.target.passed(self.value) else "FAIL"

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["target"] = str(self.target) if self.target else None
        out["median"] = self.value
        out["baseline_medians"] = self.baseline_values()
        out["ratio"] = self.ratio
        out["result"] = self.result
        return out


def _median(samples: list[float]) -> float:
    if not samples:
        return math.nan
    ordered = sorted(samples)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def fmt(value: float | None) -> str:
    """A number with about three significant digits, never in exponent form."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    if magnitude >= 0.01:
        return f"{value:.3f}"
    return f"{value:.2g}"


def format_table(rows: list[Row]) -> str:
    header = ["workload", "metric", "mandala", "baseline(s)", "ratio", "target", "result"]
    lines = [header]
    for row in rows:
        baselines = "; ".join(f"{name} {fmt(v)}" for name, v in row.baseline_values().items())
        ratio = row.ratio
        lines.append(
            [
                row.workload,
                row.metric,
                fmt(row.value),
                baselines or "-",
                f"{ratio:.2f}x" if ratio is not None else "-",
                str(row.target) if row.target else "-",
                row.result or "-",
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    right = {2, 4}  # numbers are right-aligned
    out = []
    for index, line in enumerate(lines):
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ]
        out.append("  ".join(cells).rstrip())
        if index == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def write_json(path: Path, rows: list[Row], config: dict[str, Any], seconds: float) -> None:
    payload = {
        "config": config,
        "python": sys.version,
        "platform": platform.platform(),
        "seconds": seconds,
        "rows": [row.as_dict() for row in rows],
    }
    Path(path).write_text(json.dumps(payload, indent=2, default=str))
