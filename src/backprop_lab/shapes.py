"""The shape ledger: every array of one forward and backward pass, and the product that made it.

Letters: N samples, F features into a layer, W its width. The ledger is read off the real
arrays after a pass, so it shows what the code did, not what a config promised.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .network import Network


@dataclass(frozen=True)
class ShapeEntry:
    """One array: where it lives, its shape and dtype, and how it was computed."""

    direction: str  # "forward" or "backward"
    layer: str  # "layer1", or "objective"
    array: str  # inputs, weights, biases, preactivation, output, dvalues, ...
    shape: tuple[int, ...]
    dtype: str
    product: str  # e.g. "(3, 50) @ (50, 2) -> (3, 2)"; empty for arrays that are given

    def as_row(self) -> dict[str, str]:
        row = asdict(self)
        row["shape"] = _fmt(self.shape)
        return row


def _fmt(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ")"


def _entry(direction, layer, array, value: np.ndarray, product: str = "") -> ShapeEntry:
    return ShapeEntry(direction, layer, array, tuple(value.shape), str(value.dtype), product)


def _forward_entries(label, dense, relu) -> list[ShapeEntry]:
    """The forward arrays of one layer; relu is None for a linear output layer."""
    x, w, z = dense.inputs, dense.weights, dense.output
    rows = [
        _entry("forward", label, "inputs", x),
        _entry("forward", label, "weights", w),
    ]
    product = f"{_fmt(x.shape)} @ {_fmt(w.shape)} -> {_fmt(z.shape)}"
    if dense.biases is not None:
        rows.append(_entry("forward", label, "biases", dense.biases))
        product += f" + {_fmt(dense.biases.shape)}"
    if relu is None:
        rows.append(_entry("forward", label, "output", z, product))
        return rows
    a = relu.output
    rows.append(_entry("forward", label, "preactivation", z, product))
    rows.append(_entry("forward", label, "output", a, f"relu{_fmt(z.shape)} -> {_fmt(a.shape)}"))
    return rows


def _backward_entries(label, dense, relu, dvalues, first: bool) -> list[ShapeEntry]:
    """The backward arrays of one layer; with no relu, dvalues reach the Dense layer directly."""
    x, w = dense.inputs, dense.weights
    rows = [_entry("backward", label, "dvalues", dvalues)]
    dz = dvalues
    if relu is not None:
        dz = relu.dinputs
        rows.append(_entry("backward", label, "drelu", dz,
                           f"{_fmt(dvalues.shape)} * mask{_fmt(relu.mask.shape)} -> "
                           f"{_fmt(dz.shape)}"))
    rows.append(_entry("backward", label, "dweights", dense.dweights,
                       f"{_fmt(x.T.shape)} @ {_fmt(dz.shape)} -> {_fmt(dense.dweights.shape)}"))
    if dense.dbiases is not None:
        rows.append(_entry("backward", label, "dbiases", dense.dbiases,
                           f"sum over N of {_fmt(dz.shape)} -> {_fmt(dense.dbiases.shape)}"))
    if not first:
        rows.append(_entry("backward", label, "dinputs", dense.dinputs,
                           f"{_fmt(dz.shape)} @ {_fmt(w.T.shape)} -> {_fmt(dense.dinputs.shape)}"))
    return rows


def ledger(network: Network, dvalues: np.ndarray) -> list[ShapeEntry]:
    """The ledger of the last forward and backward pass of `network`.

    `dvalues` is what the objective fed back (the last layer's upstream gradient).
    """
    labels = [f"layer{i}" for i in range(1, len(network.dense) + 1)]
    relus = [*network.relu, *[None] * (len(network.dense) - len(network.relu))]
    pairs = list(zip(labels, network.dense, relus))
    rows = [r for label, dense, relu in pairs for r in _forward_entries(label, dense, relu)]
    upstream = dvalues
    for index in reversed(range(len(pairs))):
        label, dense, relu = pairs[index]
        rows += _backward_entries(label, dense, relu, upstream, first=index == 0)
        upstream = dense.dinputs
    return rows


def key_products(entries: list[ShapeEntry]) -> dict[str, str]:
    """The entries worth seeing at a glance, as {'layer1.preactivation': '(50, 3) @ ...'}."""
    wanted = {"preactivation", "output", "dweights", "dinputs"}
    # A linear output layer's output is itself a product; a ReLU's output is not.
    return {f"{e.layer}.{e.array}": e.product for e in entries
            if e.array in wanted and "@" in e.product}
