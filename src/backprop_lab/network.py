"""A stack of Dense layers, each followed by ReLU, built from a list of widths.

Labelled objectives score the network's raw output, so for them a last Dense layer with no
activation (a linear output layer, as wide as the data needs) follows the ReLU layers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from .layers import Dense, ReLU


class Network:
    """Dense -> ReLU -> Dense -> ReLU ... with one (Dense, ReLU) pair per entry of `widths`.

    With `output_width`, one more Dense layer of that width ends the stack, without ReLU,
    so `dense` holds one layer more than `relu`.
    """

    def __init__(
        self,
        n_features: int,
        widths: Sequence[int],
        *,
        rng: np.random.Generator,
        init_scale: float = 0.01,
        bias: bool = True,
        dtype=np.float64,
        output_width: int | None = None,
    ):
        sizes = [n_features, *widths, *([] if output_width is None else [output_width])]
        self.dense = [
            Dense(n_in, n_out, rng=rng, init_scale=init_scale, bias=bias, dtype=dtype)
            for n_in, n_out in zip(sizes[:-1], sizes[1:])
        ]
        self.relu = [ReLU() for _ in widths]

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        """inputs (N, F) -> output of the last layer (N, W_last)."""
        values = inputs
        for index, dense in enumerate(self.dense):
            values = dense.forward(values)
            if index < len(self.relu):
                values = self.relu[index].forward(values)
        return values

    def backward(self, dvalues: np.ndarray) -> None:
        """Fill every layer's dweights / dbiases from d loss / d output (N, W_last)."""
        for index in reversed(range(len(self.dense))):
            if index < len(self.relu):
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
