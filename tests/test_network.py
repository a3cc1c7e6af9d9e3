"""The whole network and the objectives against finite differences; the founding case by hand."""

import numpy as np
import pytest

from backprop_lab.config import Settings
from backprop_lab.gradcheck import check_network, numerical_gradient, relative_error
from backprop_lab.network import Network
from backprop_lab.objectives import HalfSumSquares, OutputMean
from backprop_lab.runner import MemoryRecorder, train


def biased_network(rng, n_features, widths):
    """A network with non-trivial weights and biases, so every ReLU input sits away from 0."""
    network = Network(n_features, widths, rng=rng, init_scale=0.7)
    for dense in network.dense:
        dense.biases[:] = rng.uniform(0.2, 0.5, size=dense.biases.shape)
    return network


@pytest.mark.parametrize("objective_cls", [OutputMean, HalfSumSquares])
@pytest.mark.parametrize("widths", [[2], [8, 4], [5, 6, 3]])
def test_network_gradients_match_finite_differences(objective_cls, widths):
    rng = np.random.default_rng(len(widths))
    network = biased_network(rng, 4, widths)
    inputs = rng.standard_normal((11, 4))
    objective = objective_cls()

    def loss():
        return objective(network.forward(inputs))[0]

    _, dvalues = objective(network.forward(inputs))
    network.backward(dvalues)
    for name, parameter, gradient in network.parameters():
        numeric = numerical_gradient(loss, parameter, np.arange(parameter.size))
        error = relative_error(gradient.reshape(-1), numeric)
        assert error.max() < 1e-6, f"{name}: relative error {error.max():.2e}"


def test_output_mean_upstream_gradient_is_one_over_n_times_w():
    output = np.random.default_rng(0).standard_normal((50, 2))
    loss, dvalues = OutputMean()(output)
    assert loss == pytest.approx(output.sum() / 100)
    np.testing.assert_array_equal(dvalues, np.full((50, 2), 1 / 100))
    numeric = numerical_gradient(lambda: OutputMean()(output)[0], output, np.arange(100))
    np.testing.assert_allclose(numeric.reshape(50, 2), dvalues, rtol=1e-6)


def test_half_sum_squares_upstream_gradient_is_the_output():
    output = np.random.default_rng(1).standard_normal((6, 3))
    loss, dvalues = HalfSumSquares()(output)
    assert loss == pytest.approx(0.5 * np.sum(output**2))
    np.testing.assert_array_equal(dvalues, output)
    numeric = numerical_gradient(lambda: HalfSumSquares()(output)[0], output, np.arange(18))
    np.testing.assert_allclose(numeric.reshape(6, 3), output, rtol=1e-6)


def test_founding_dweights_equal_inputs_t_times_masked_upstream():
    # 50 x 3 -> [2], no bias: dweights = inputs.T @ (relu_mask / (N * W)), computed here alone.
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((50, 3))
    network = Network(3, [2], rng=rng, init_scale=0.01, bias=False)
    weights = network.dense[0].weights.copy()
    loss, dvalues = OutputMean()(network.forward(inputs))
    network.backward(dvalues)

    mask = (inputs @ weights > 0).astype(float)  # (N, F) @ (F, W) -> (N, W)
    expected = inputs.T @ (mask / (50 * 2))  # (F, N) @ (N, W) -> (F, W)
    assert network.dense[0].dweights.shape == (3, 2)
    np.testing.assert_allclose(network.dense[0].dweights, expected, rtol=1e-12, atol=0)
    assert loss == pytest.approx(np.maximum(inputs @ weights, 0).mean())


def test_default_run_loss_falls():
    recorder = MemoryRecorder()
    result = train(Settings(), recorder)
    losses = [value for _, value in recorder.history["train/loss"]]
    assert len(losses) == Settings().optimizer.steps
    assert result.final_loss < 0.5 * result.initial_loss
    assert all(b <= a + 1e-15 for a, b in zip(losses, losses[1:]))  # never rises


def test_gradcheck_catches_a_wrong_gradient():
    rng = np.random.default_rng(2)
    network = biased_network(rng, 3, [4, 2])
    inputs = rng.standard_normal((10, 3))
    good = check_network(network, inputs, OutputMean, rng=rng, max_entries=50, max_samples=64)
    assert good.max_rel_error < 1e-7

    class DoubledMean(OutputMean):
        """Reports the right loss but feeds back twice the true gradient."""

        def __call__(self, output):
            loss, dvalues = super().__call__(output)
            return loss, 2 * dvalues

    bad = check_network(network, inputs, DoubledMean, rng=rng, max_entries=50, max_samples=64)
    assert bad.max_rel_error == pytest.approx(1 / 3, rel=1e-6)  # |2g - g| / (2g + g)


def test_gradcheck_samples_a_bounded_number_of_entries():
    rng = np.random.default_rng(4)
    network = biased_network(rng, 30, [40])
    inputs = rng.standard_normal((500, 30))
    report = check_network(network, inputs, OutputMean, rng=rng, max_entries=7, max_samples=16)
    assert report.n_checked == 7 + 7  # weights (30 x 40) and biases (1 x 40), 7 entries each
    assert report.max_rel_error < 1e-6
