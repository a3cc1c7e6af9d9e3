"""Dense and ReLU layers with hand-written backward passes.

Glossary (the vocabulary of *Neural Networks from Scratch*, used across the package):
    inputs    what a layer receives in forward                         (N, F)
    output    what forward returns                                     (N, W)
    dvalues   gradient of the loss with respect to a layer's output    (N, W)
    dinputs   gradient of the loss with respect to a layer's inputs    (N, F)
    dweights  gradient of the loss with respect to the weights         (F, W)
    dbiases   gradient of the loss with respect to the biases          (1, W)

Shape letters: N samples, F features coming into a layer, W neurons in it (its width).
Weights are stored as (inputs, neurons) = (F, W), so a forward pass is inputs @ weights.

forward returns its output; backward returns dinputs and leaves dweights / dbiases beside
the parameters. Returned arrays are buffers the layer reuses: they stay valid until the
layer's next call, which is what keeps the training loop free of per-step allocations.
"""

from __future__ import annotations

import numpy as np


def _reuse(buffer: np.ndarray | None, shape: tuple[int, ...], dtype) -> np.ndarray:
    """Return `buffer` when it already has this shape and dtype, else a fresh empty array."""
    if buffer is None or buffer.shape != shape or buffer.dtype != dtype:
        return np.empty(shape, dtype=dtype)
    return buffer


class Dense:
    """A fully connected layer: output = inputs @ weights + biases."""

    def __init__(
        self,
        n_inputs: int,
        n_neurons: int,
        *,
        rng: np.random.Generator,
        init_scale: float = 0.01,
        bias: bool = True,
        dtype=np.float64,
    ):
        # Drawn in float64 then cast, so float32 and float64 runs start from the same numbers.
        self.weights = (init_scale * rng.standard_normal((n_inputs, n_neurons))).astype(dtype)
        self.biases = np.zeros((1, n_neurons), dtype=dtype) if bias else None  # (1, W)
        self.dweights = np.zeros_like(self.weights)  # (F, W)
        self.dbiases = np.zeros_like(self.biases) if bias else None  # (1, W)
        self.inputs: np.ndarray | None = None
        self.output: np.ndarray | None = None
        self.dinputs: np.ndarray | None = None

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        """inputs (N, F) -> output (N, W)."""
        self.inputs = inputs
        n_samples, n_neurons = inputs.shape[0], self.weights.shape[1]
        self.output = _reuse(self.output, (n_samples, n_neurons), self.weights.dtype)
        np.matmul(inputs, self.weights, out=self.output)  # (N, F) @ (F, W) -> (N, W)
        if self.biases is not None:
            self.output += self.biases  # (N, W) + (1, W) -> (N, W)
        return self.output

    def backward(self, dvalues: np.ndarray, need_dinputs: bool = True) -> np.ndarray | None:
        """dvalues (N, W) -> dinputs (N, F); fills dweights (F, W) and dbiases (1, W).

        The first layer of a network has no one to pass dinputs to, so it may skip that
        product (need_dinputs=False) and return None.
        """
        np.matmul(self.inputs.T, dvalues, out=self.dweights)  # (F, N) @ (N, W) -> (F, W)
        if self.biases is not None:
            np.sum(dvalues, axis=0, keepdims=True, out=self.dbiases)  # (N, W) -> (1, W)
        if not need_dinputs:
            return None
        self.dinputs = _reuse(self.dinputs, self.inputs.shape, self.weights.dtype)
        np.matmul(dvalues, self.weights.T, out=self.dinputs)  # (N, W) @ (W, F) -> (N, F)
        return self.dinputs

    @property
    def n_parameters(self) -> int:
        return self.weights.size + (0 if self.biases is None else self.biases.size)


class ReLU:
    """Rectified linear unit: output = max(inputs, 0); the gradient passes where inputs > 0."""

    def __init__(self):
        self.inputs: np.ndarray | None = None
        self.output: np.ndarray | None = None
        self.mask: np.ndarray | None = None  # (N, W) bool, True where inputs > 0
        self.dinputs: np.ndarray | None = None

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        """inputs (N, W) -> output (N, W)."""
        self.inputs = inputs
        self.mask = _reuse(self.mask, inputs.shape, np.bool_)
        np.greater(inputs, 0, out=self.mask)
        self.output = _reuse(self.output, inputs.shape, inputs.dtype)
        np.multiply(inputs, self.mask, out=self.output)  # (N, W) * (N, W) -> (N, W)
        return self.output

    def backward(self, dvalues: np.ndarray) -> np.ndarray:
        """dvalues (N, W) -> dinputs (N, W), zero wherever the forward input was <= 0."""
        self.dinputs = _reuse(self.dinputs, dvalues.shape, dvalues.dtype)
        np.multiply(dvalues, self.mask, out=self.dinputs)  # (N, W) * (N, W) -> (N, W)
        return self.dinputs

    @property
    def dead_fraction(self) -> float:
        """Fraction of this layer's outputs that are zero in the last forward pass."""
        return 1.0 - np.count_nonzero(self.mask) / self.mask.size
