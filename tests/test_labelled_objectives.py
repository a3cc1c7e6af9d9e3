"""mse and softmax cross-entropy: values by hand, gradients against finite differences."""

import numpy as np
import pytest

from backprop_lab import gradcheck
from backprop_lab.network import Network
from backprop_lab.objectives import MeanSquaredError, SoftmaxCrossEntropy, accuracy

H = 1e-6


def numeric_dvalues(objective, output, targets):
    """Central differences of the loss with respect to every entry of the output."""
    grad = np.zeros_like(output)
    for index in np.ndindex(output.shape):
        original = output[index]
        output[index] = original + H
        plus = objective(output, targets)[0]
        output[index] = original - H
        minus = objective(output, targets)[0]
        output[index] = original
        grad[index] = (plus - minus) / (2 * H)
    return grad


def test_mse_value_and_gradient():
    output = np.array([[1.0, 2.0], [3.0, 5.0]])
    targets = np.array([[1.0, 0.0], [1.0, 1.0]])
    loss, dvalues = MeanSquaredError()(output, targets)
    assert loss == pytest.approx((0 + 4 + 4 + 16) / 4)
    np.testing.assert_allclose(dvalues, 2 * (output - targets) / 4)
    rng = np.random.default_rng(0)
    output, targets = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    analytic = MeanSquaredError()(output, targets)[1]
    numeric = numeric_dvalues(MeanSquaredError(), output, targets)
    assert gradcheck.relative_error(analytic, numeric).max() < 1e-7


def test_softmax_cross_entropy_value_by_hand():
    output = np.array([[0.0, np.log(3.0)], [2.0, 2.0]])
    targets = np.array([1, 0])
    loss, dvalues = SoftmaxCrossEntropy()(output, targets)
    # Row 1: probabilities (1/4, 3/4), true class 1; row 2: (1/2, 1/2), true class 0.
    assert loss == pytest.approx((-np.log(0.75) - np.log(0.5)) / 2)
    np.testing.assert_allclose(dvalues, [[0.25 / 2, -0.25 / 2], [-0.5 / 2, 0.5 / 2]])


def test_softmax_cross_entropy_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    output = rng.standard_normal((6, 4))
    targets = rng.integers(0, 4, size=6)
    analytic = SoftmaxCrossEntropy()(output, targets)[1].copy()
    numeric = numeric_dvalues(SoftmaxCrossEntropy(), output, targets)
    assert gradcheck.relative_error(analytic, numeric).max() < 1e-7


def test_softmax_cross_entropy_stays_finite_for_confident_scores():
    output = np.array([[1000.0, 0.0], [0.0, 1000.0]])
    loss, dvalues = SoftmaxCrossEntropy()(output, np.array([1, 1]))
    assert loss == pytest.approx(500.0)  # row 1 pays 1000, row 2 nothing, averaged
    assert np.isfinite(dvalues).all()


def test_accuracy_counts_the_highest_score():
    output = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert accuracy(output, np.array([1, 1, 1])) == pytest.approx(2 / 3)


@pytest.mark.parametrize("objective_cls, targets", [
    (SoftmaxCrossEntropy, np.array([0, 2, 1, 2, 0, 1, 1, 0])),
    (MeanSquaredError, np.linspace(-1, 1, 16).reshape(8, 2)),
])
def test_network_with_a_linear_output_layer_passes_the_gradient_check(objective_cls, targets):
    rng = np.random.default_rng(2)
    width = 3 if objective_cls is SoftmaxCrossEntropy else 2
    network = Network(4, [6, 5], rng=rng, init_scale=0.5, output_width=width)
    assert len(network.dense) == 3 and len(network.relu) == 2
    inputs = rng.standard_normal((8, 4))
    report = gradcheck.check_network(network, inputs, objective_cls, rng=rng, max_entries=50,
                                     max_samples=8, targets=targets)
    assert report.n_checked > 0 and report.max_rel_error < 1e-6


def test_the_gradient_check_catches_a_slightly_wrong_gradient():
    class Off(SoftmaxCrossEntropy):
        def __call__(self, output, targets):
            loss, dvalues = super().__call__(output, targets)
            return loss, dvalues * 1.001  # a 0.1% error

    rng = np.random.default_rng(3)
    network = Network(4, [6], rng=rng, init_scale=0.5, output_width=3)
    inputs = rng.standard_normal((8, 4))
    targets = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    report = gradcheck.check_network(network, inputs, Off, rng=rng, max_entries=50,
                                     max_samples=8, targets=targets)
    assert report.max_rel_error > 1e-4


def test_the_shape_ledger_shows_the_linear_output_layer():
    from backprop_lab import shapes

    rng = np.random.default_rng(4)
    network = Network(2, [5], rng=rng, output_width=3)
    objective = SoftmaxCrossEntropy()
    _, dvalues = objective(network.forward(rng.standard_normal((7, 2))), np.arange(7) % 3)
    network.backward(dvalues)
    entries = shapes.ledger(network, dvalues)
    layer2 = {(e.direction, e.array): e for e in entries if e.layer == "layer2"}
    assert layer2["forward", "output"].product == "(7, 5) @ (5, 3) -> (7, 3) + (1, 3)"
    assert layer2["backward", "dweights"].product == "(5, 7) @ (7, 3) -> (5, 3)"
    assert ("forward", "preactivation") not in layer2 and ("backward", "drelu") not in layer2
    assert shapes.key_products(entries)["layer2.output"].endswith("-> (7, 3) + (1, 3)")
