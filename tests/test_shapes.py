"""The shape ledger of one forward and backward pass."""

import numpy as np

from backprop_lab.network import Network
from backprop_lab.objectives import OutputMean
from backprop_lab.shapes import key_products, ledger


def ledger_for(widths, n=50, f=3, bias=True):
    rng = np.random.default_rng(0)
    network = Network(f, widths, rng=rng, bias=bias)
    _, dvalues = OutputMean()(network.forward(rng.standard_normal((n, f))))
    network.backward(dvalues)
    return ledger(network, dvalues)


def by_key(entries):
    return {(e.direction, e.layer, e.array): e for e in entries}


def test_ledger_for_one_layer_of_two():
    entries = by_key(ledger_for([2]))
    assert entries["forward", "layer1", "inputs"].shape == (50, 3)
    assert entries["forward", "layer1", "weights"].shape == (3, 2)
    assert entries["forward", "layer1", "biases"].shape == (1, 2)
    forward = entries["forward", "layer1", "preactivation"]
    assert forward.product == "(50, 3) @ (3, 2) -> (50, 2) + (1, 2)"
    assert entries["backward", "layer1", "dweights"].product == "(3, 50) @ (50, 2) -> (3, 2)"
    assert entries["backward", "layer1", "dbiases"].shape == (1, 2)
    assert ("backward", "layer1", "dinputs") not in entries  # the first layer needs none
    assert all(e.dtype == "float64" for e in entries.values())


def test_ledger_for_two_layers():
    entries = ledger_for([8, 4], bias=False)
    table = by_key(entries)
    assert table["forward", "layer2", "inputs"].shape == (50, 8)
    assert table["forward", "layer2", "preactivation"].product == "(50, 8) @ (8, 4) -> (50, 4)"
    assert table["backward", "layer2", "dweights"].product == "(8, 50) @ (50, 4) -> (8, 4)"
    assert table["backward", "layer2", "dinputs"].product == "(50, 4) @ (4, 8) -> (50, 8)"
    assert table["backward", "layer1", "dvalues"].shape == (50, 8)
    assert table["backward", "layer1", "dweights"].product == "(3, 50) @ (50, 8) -> (3, 8)"
    assert not any(e.array in ("biases", "dbiases") for e in entries)
    # Backward rows run from the last layer to the first.
    layers = [e.layer for e in entries if e.direction == "backward"]
    assert layers.index("layer2") < layers.index("layer1")
    assert key_products(entries)["layer2.dweights"] == "(8, 50) @ (50, 4) -> (8, 4)"
