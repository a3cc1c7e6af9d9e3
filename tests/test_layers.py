"""Each layer's backward pass against central finite differences, in float64."""

import numpy as np
import pytest

from backprop_lab.gradcheck import numerical_gradient, relative_error
from backprop_lab.layers import Dense, ReLU

TOL = 1e-7


def away_from_kink(rng, shape, margin=0.1):
    """Standard-normal values pushed at least `margin` away from 0, where ReLU bends."""
    values = rng.standard_normal(shape)
    return values + np.sign(values) * margin


def fd_grad(loss, array):
    return numerical_gradient(loss, array, np.arange(array.size)).reshape(array.shape)


def test_numerical_gradient_matches_a_known_derivative():
    x = np.array([0.5, -1.5, 2.0])
    # d/dx of sum(x^3) is 3x^2; a central difference is exact up to O(h^2) rounding.
    numeric = numerical_gradient(lambda: float(np.sum(x**3)), x, np.arange(3))
    np.testing.assert_allclose(numeric, 3 * x**2, rtol=1e-8)


@pytest.mark.parametrize("n, f, w", [(7, 3, 2), (12, 5, 4), (1, 6, 9)])
@pytest.mark.parametrize("bias", [True, False])
def test_dense_backward_matches_finite_differences(n, f, w, bias):
    rng = np.random.default_rng(n * 100 + f * 10 + w)
    layer = Dense(f, w, rng=rng, init_scale=1.0, bias=bias)
    if bias:
        layer.biases[:] = rng.standard_normal(layer.biases.shape)
    inputs = rng.standard_normal((n, f))
    probe = rng.standard_normal((n, w))  # loss = sum(output * probe), so dvalues = probe

    def loss():
        return float(np.sum(layer.forward(inputs) * probe))

    layer.forward(inputs)
    dinputs = layer.backward(probe).copy()
    assert dinputs.shape == (n, f) and layer.dweights.shape == (f, w)
    assert np.max(relative_error(layer.dweights, fd_grad(loss, layer.weights))) < TOL
    assert np.max(relative_error(dinputs, fd_grad(loss, inputs))) < TOL
    if bias:
        assert np.max(relative_error(layer.dbiases, fd_grad(loss, layer.biases))) < TOL


def test_relu_backward_matches_finite_differences():
    rng = np.random.default_rng(3)
    relu = ReLU()
    inputs = away_from_kink(rng, (9, 4))
    probe = rng.standard_normal((9, 4))

    def loss():
        return float(np.sum(relu.forward(inputs) * probe))

    relu.forward(inputs)
    dinputs = relu.backward(probe).copy()
    np.testing.assert_allclose(dinputs, fd_grad(loss, inputs), rtol=1e-7, atol=1e-12)
    # The gradient passes exactly where the input was positive, nowhere else.
    np.testing.assert_array_equal(dinputs == 0, inputs <= 0)


def test_backward_twice_gives_the_same_gradients():
    rng = np.random.default_rng(5)
    layer = Dense(3, 4, rng=rng, init_scale=1.0)
    inputs, dvalues = rng.standard_normal((6, 3)), rng.standard_normal((6, 4))
    layer.forward(inputs)
    first = (layer.backward(dvalues).copy(), layer.dweights.copy(), layer.dbiases.copy())
    second = (layer.backward(dvalues), layer.dweights, layer.dbiases)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_dense_shapes_follow_the_book():
    layer = Dense(3, 2, rng=np.random.default_rng(0), init_scale=0.01, bias=False)
    assert layer.weights.shape == (3, 2)  # stored as (inputs, neurons)
    assert layer.biases is None and layer.dbiases is None
    output = layer.forward(np.ones((50, 3)))
    assert output.shape == (50, 2)
    assert layer.backward(np.ones((50, 2))).shape == (50, 3)
