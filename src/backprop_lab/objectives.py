"""Objectives: each maps the network's output to a loss and its upstream gradient.

An objective is called on the last layer's output (N, W), and on the targets when it
needs them, and returns (loss, dvalues): dvalues is d loss / d output with the output's
shape, ready for backward. `needs` says which targets: None (the founding objectives act
on the output alone), "values" (T numbers per sample) or "classes" (one index per sample).
Labelled objectives average over the N samples, so a mini-batch's loss is on the same
scale as the whole dataset's.
"""

from __future__ import annotations

import numpy as np

from .layers import _reuse


class OutputMean:
    """loss = mean of every output element, so d loss / d output = 1 / (N * W) everywhere."""

    name = "output_mean"
    needs = None

    def __init__(self):
        self._dvalues: np.ndarray | None = None

    def __call__(self, output: np.ndarray, targets=None) -> tuple[float, np.ndarray]:
        # The ufunc's sum over the N * W elements, then the division: what ndarray.mean does,
        # without its Python wrapper, which costs more than the sum on a small output.
        loss = float(np.add.reduce(output, axis=None)) / output.size
        if self._dvalues is None or self._dvalues.shape != output.shape:
            # Constant for a given shape, so it is built once and reused.
            self._dvalues = np.full(output.shape, 1.0 / output.size, dtype=output.dtype)
        return loss, self._dvalues


class HalfSumSquares:
    """loss = 0.5 * sum of squared outputs, so d loss / d output = output itself."""

    name = "half_sum_squares"
    needs = None

    def __init__(self):
        self._dvalues: np.ndarray | None = None

    def __call__(self, output: np.ndarray, targets=None) -> tuple[float, np.ndarray]:
        flat = output.reshape(-1)  # (N * W,)
        loss = 0.5 * float(flat @ flat)
        # A copy: the output buffer is overwritten by the next forward pass.
        self._dvalues = _reuse(self._dvalues, output.shape, output.dtype)
        np.copyto(self._dvalues, output)
        return loss, self._dvalues


class MeanSquaredError:
    """loss = mean over samples and target columns of (output - targets)^2.

    With N samples and T columns, d loss / d output = 2 (output - targets) / (N * T).
    """

    name = "mse"
    needs = "values"

    def __call__(self, output: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
        """output (N, T), targets (N, T) -> loss, dvalues (N, T)."""
        error = output - targets  # (N, T) - (N, T) -> (N, T)
        flat = error.reshape(-1)  # (N * T,)
        loss = float(flat @ flat) / error.size
        return loss, error * (2.0 / error.size)  # (N, T)


class SoftmaxCrossEntropy:
    """Softmax over K class scores, then the mean negative log-probability of the true class.

    Taken together the two have the short gradient (softmax(output) - one_hot(targets)) / N,
    cheaper and steadier than chaining each one's Jacobian. The loss is computed as
    log-sum-exp minus the true score, which stays finite however confident the scores.
    """

    name = "softmax_cross_entropy"
    needs = "classes"

    def __call__(self, output: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
        """output (N, K) scores, targets (N,) class indices -> loss, dvalues (N, K)."""
        n_samples = output.shape[0]
        rows = np.arange(n_samples)
        shifted = output - output.max(axis=1, keepdims=True)  # (N, K) - (N, 1) -> (N, K)
        exps = np.exp(shifted)
        sums = exps.sum(axis=1)  # (N, K) -> (N,)
        loss = float(np.mean(np.log(sums) - shifted[rows, targets]))
        dvalues = exps / sums[:, None]  # (N, K) / (N, 1) -> (N, K), the softmax
        dvalues[rows, targets] -= 1.0
        dvalues /= n_samples
        return loss, dvalues


def accuracy(output: np.ndarray, targets: np.ndarray) -> float:
    """Fraction of rows whose highest score (N, K) is at the true class index (N,)."""
    return float(np.mean(output.argmax(axis=1) == targets))


OBJECTIVES = {cls.name: cls for cls in (OutputMean, HalfSumSquares, MeanSquaredError,
                                        SoftmaxCrossEntropy)}
