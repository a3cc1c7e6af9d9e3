"""Objectives: each maps the network's output to a loss and its upstream gradient.

An objective is called on the last layer's output (N, W) and returns (loss, dvalues),
dvalues being d loss / d output with the output's shape, ready for backward.
"""

from __future__ import annotations

import numpy as np

from .layers import _reuse


class OutputMean:
    """loss = mean of every output element, so d loss / d output = 1 / (N * W) everywhere."""

    name = "output_mean"

    def __init__(self):
        self._dvalues: np.ndarray | None = None

    def __call__(self, output: np.ndarray) -> tuple[float, np.ndarray]:
        loss = float(output.mean())
        if self._dvalues is None or self._dvalues.shape != output.shape:
            # Constant for a given shape, so it is built once and reused.
            self._dvalues = np.full(output.shape, 1.0 / output.size, dtype=output.dtype)
        return loss, self._dvalues


class HalfSumSquares:
    """loss = 0.5 * sum of squared outputs, so d loss / d output = output itself."""

    name = "half_sum_squares"

    def __init__(self):
        self._dvalues: np.ndarray | None = None

    def __call__(self, output: np.ndarray) -> tuple[float, np.ndarray]:
        flat = output.reshape(-1)  # (N * W,)
        loss = 0.5 * float(flat @ flat)
        # A copy: the output buffer is overwritten by the next forward pass.
        self._dvalues = _reuse(self._dvalues, output.shape, output.dtype)
        np.copyto(self._dvalues, output)
        return loss, self._dvalues


OBJECTIVES = {cls.name: cls for cls in (OutputMean, HalfSumSquares)}


def make_objective(name: str):
    """Build the objective registered under `name`."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose one of {sorted(OBJECTIVES)}")
    return OBJECTIVES[name]()
