"""A stack of Dense layers, each followed by ReLU, built from a list of widths."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from .layers import Dense, ReLU


class Network:
    """Dense -> ReLU -> Dense -> ReLU ... with one (Dense, ReLU) pair per entry of `widths`."""

    def __init__(
        self,
        n_features: int,
        widths: Sequence[int],
        *,
        rng: np.random.Generator,
        init_scale: float = 0.01,
        bias: bool = True,
        dtype=np.float64,
    ):
        sizes = [n_features, *widths]
        self.dense = [
            Dense(n_in, n_out, rng=rng, init_scale=init_scale, bias=bias, dtype=dtype)
            for n_in, n_out in zip(sizes[:-1], sizes[1:])
        ]
        self.relu = [ReLU() for _ in widths]

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        """inputs (N, F) -> output of the last ReLU (N, W_last)."""
        values = inputs
        for dense, relu in zip(self.dense, self.relu):
            values = relu.forward(dense.forward(values))
        return values

    def backward(self, dvalues: np.ndarray) -> None:
        """Fill every layer's dweights / dbiases from d loss / d output (N, W_last)."""
        for index in reversed(range(len(self.dense))):
            dvalues = self.relu[index].backward(dvalues)
            dvalues = self.dense[index].backward(dvalues, need_dinputs=index > 0)

    def parameters(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """(name, parameter, gradient) for every trainable array, e.g. ('layer1.weights', ...)."""
        for number, dense in enumerate(self.dense, start=1):
            yield f"layer{number}.weights", dense.weights, dense.dweights
            if dense.biases is not None:
                yield f"layer{number}.biases", dense.biases, dense.dbiases

    @property
    def n_parameters(self) -> int:
        return sum(dense.n_parameters for dense in self.dense)
