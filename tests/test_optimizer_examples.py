"""SGD (plain, momentum, decay) and Adam against small examples worked out by hand."""

import math

import numpy as np
import pytest

from backprop_lab.optimizers import SGD, Adam, make_optimizer


class OneParameter:
    """Stands in for a network: one 1x2 weight array whose gradient the test sets."""

    def __init__(self, value):
        self.weights = np.array([value], dtype=np.float64)  # (1, 2)
        self.dweights = np.zeros_like(self.weights)

    def parameters(self):
        yield "layer1.weights", self.weights, self.dweights


def run(optimizer, start, gradients):
    """Apply one step per gradient; return the parameter after each step."""
    net = OneParameter(start)
    trail = []
    for gradient in gradients:
        net.dweights[...] = gradient
        optimizer.step(net)
        trail.append(net.weights[0].tolist())
    return trail


def test_plain_sgd_subtracts_lr_times_gradient():
    trail = run(SGD(lr=0.1), [1.0, -2.0], [[0.5, 1.0], [0.5, -3.0]])
    np.testing.assert_allclose(trail, [[0.95, -2.1], [0.90, -1.8]], rtol=1e-12)


def test_sgd_momentum_carries_the_previous_update():
    # velocity_1 = -0.1 * 1 = -0.1; velocity_2 = 0.9 * -0.1 - 0.1 * 1 = -0.19;
    # velocity_3 = 0.9 * -0.19 - 0.1 * 0 = -0.171.
    trail = run(SGD(lr=0.1, momentum=0.9), [0.0, 0.0], [[1.0, 0.0]] * 2 + [[0.0, 0.0]])
    assert [t[0] for t in trail] == pytest.approx([-0.1, -0.29, -0.461])
    assert [t[1] for t in trail] == [0.0, 0.0, 0.0]


def test_sgd_decay_shrinks_the_learning_rate_per_step():
    # lr_t = 0.3 / (1 + 0.5 t): 0.3, 0.2, 0.15 for t = 0, 1, 2, with gradient 1.
    optimizer = SGD(lr=0.3, decay=0.5)
    trail = run(optimizer, [0.0, 0.0], [[1.0, 1.0]] * 3)
    assert [t[0] for t in trail] == pytest.approx([-0.3, -0.5, -0.65])
    assert optimizer.current_lr == pytest.approx(0.3 / 2.5)


def test_adam_matches_the_formulas_worked_in_plain_floats():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-7
    gradients = [2.0, -1.0, 0.5]
    # The same recurrences, one scalar at a time, written out here without numpy.
    m = v = 0.0
    x, expected = 1.0, []
    for t, g in enumerate(gradients, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        x -= lr * (m / (1 - b1**t)) / (math.sqrt(v / (1 - b2**t)) + eps)
        expected.append(x)
    trail = run(Adam(lr=lr, beta1=b1, beta2=b2, epsilon=eps), [1.0, 1.0],
                [[g, 0.0] for g in gradients])
    assert [t[0] for t in trail] == pytest.approx(expected, rel=1e-12)
    # The first step of Adam moves by lr whatever the gradient's size.
    assert trail[0][0] == pytest.approx(1.0 - lr, rel=1e-6)
    assert [t[1] for t in trail] == [1.0, 1.0, 1.0]  # a zero gradient never moves


def test_update_ratio_previews_the_next_step_without_taking_it():
    optimizer = Adam(lr=0.01)
    net = OneParameter([3.0, 4.0])  # norm 5
    net.dweights[...] = [[1.0, -1.0]]
    ratio = optimizer.update_ratio("layer1.weights", net.weights, net.dweights)
    # First Adam step: each entry moves by lr (up to epsilon), so ||update|| = 0.01 * sqrt(2).
    assert ratio == pytest.approx(0.01 * math.sqrt(2) / 5, rel=1e-5)
    assert optimizer.iterations == 0 and net.weights.tolist() == [[3.0, 4.0]]
    optimizer.step(net)
    moved = np.linalg.norm(net.weights - np.array([[3.0, 4.0]])) / 5
    assert moved == pytest.approx(ratio)


def test_make_optimizer_names_the_choices():
    assert isinstance(make_optimizer("sgd", lr=0.1), SGD)
    with pytest.raises(ValueError, match="adam"):
        make_optimizer("rmsprop", lr=0.1)
