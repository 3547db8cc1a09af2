"""What every runtime gives back: a callable forward pass and what it resolved to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Forward:
    """``forward(batch) -> outputs``: a float32 NumPy batch in, a float32 NumPy array out."""

    run: Callable[[np.ndarray], np.ndarray]
    runtime: str  # the registered name of what actually runs: tensorflow, openvino
    precision: str  # float32 | bfloat16: the precision of its arithmetic
    note: str = ""  # why auto chose it, or why it fell back

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.run(np.ascontiguousarray(batch, dtype=np.float32))

    def label(self) -> str:
        """One word pair for metrics and logs: ``openvino bfloat16``."""
        return f"{self.runtime} {self.precision}"
