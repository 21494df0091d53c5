"""Sizes and repetition counts of a benchmark run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Config"]


@dataclass
class Config:
    n: int = 10_000
    """Calls per run for the fresh, warm, cold and memory workloads."""
    joblib_n: int = 1_000
    """Calls per run for joblib.Memory (about 1 ms per call; its cost does not depend on N)."""
    reps: int = 5
    """Runs per figure; every figure is the median over them."""
    sizes: list[int] = field(default_factory=lambda: [1_000, 10_000, 100_000, 1_000_000])
    """Store sizes (calls already stored) for the scaling workload."""
    scaling_m: int = 2_000
    """Calls measured at each store size (fewer when the store is smaller)."""
    sustained_blocks: int = 6
    """Back-to-back blocks of ``scaling_m`` fresh calls, each committed, in the sustained row."""
    array_mb: float = 100.0
    """Size of the big array, in MB (10**6 bytes)."""
    quick: bool = False

    @classmethod
    def quick_config(cls) -> Config:
        return cls(
            n=1_000,
            joblib_n=200,
            reps=3,
            sizes=[1_000, 10_000],
            scaling_m=500,
            sustained_blocks=3,
            array_mb=16.0,
            quick=True,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
