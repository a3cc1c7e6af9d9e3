"""The tuned training step (reused buffers, out= products) against a plain reference.

The reference below is the same maths written the obvious way, allocating freely; in
float64 the runner must reproduce its losses and final weights exactly, not approximately.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from backprop_lab.config import (
    DatasetSettings,
    GradcheckSettings,
    ModelSettings,
    ObjectiveSettings,
    OptimizerSettings,
    Settings,
)
from backprop_lab.runner import (
    MemoryRecorder,
    _first_non_finite,
    array_stats,
    build,
    step_metrics,
    train,
)


def reference_losses(inputs, weights, biases, objective, lr, steps):
    """Plain gradient descent on Dense -> ReLU layers; returns per-step losses and weights."""
    weights, biases = [w.copy() for w in weights], [None if b is None else b.copy()
                                                    for b in biases]
    losses = []
    for _ in range(steps):
        activations, masks = [inputs], []
        for w, b in zip(weights, biases, strict=True):
            z = activations[-1] @ w  # (N, F) @ (F, W) -> (N, W)
            if b is not None:
                z = z + b  # (N, W) + (1, W)
            masks.append(z > 0)
            activations.append(z * masks[-1])
        output = activations[-1]
        if objective == "output_mean":
            losses.append(float(output.mean()))
            dvalues = np.full(output.shape, 1.0 / output.size)
        else:
            flat = output.reshape(-1)
            losses.append(0.5 * float(flat @ flat))
            dvalues = output.copy()
        for i in reversed(range(len(weights))):
            dz = dvalues * masks[i]  # (N, W)
            dweights = activations[i].T @ dz  # (F, N) @ (N, W) -> (F, W)
            dvalues = dz @ weights[i].T  # (N, W) @ (W, F) -> (N, F)
            weights[i] = weights[i] + dweights * -lr
            if biases[i] is not None:
                biases[i] = biases[i] + dz.sum(axis=0, keepdims=True) * -lr
    return losses, weights, biases


@pytest.mark.parametrize("objective", ["output_mean", "half_sum_squares"])
@pytest.mark.parametrize("widths,bias", [((2,), False), ((6, 4), True)])
def test_runner_step_equals_plain_reference_exactly(objective, widths, bias):
    settings = Settings(
        dataset=DatasetSettings(n_samples=30, n_features=5),
        model=ModelSettings(widths=widths, bias=bias, init_scale=0.5),
        objective=ObjectiveSettings(name=objective),
        optimizer=OptimizerSettings(lr=0.05, steps=7),
        gradcheck=GradcheckSettings(enabled=False),
    )
    parts = build(settings)
    expected, weights, biases = reference_losses(
        parts.train.inputs, [d.weights for d in parts.network.dense],
        [d.biases for d in parts.network.dense], objective, lr=0.05, steps=7)

    recorder = MemoryRecorder()
    train(settings, recorder)

    assert [v for _, v in recorder.history["train/loss"]] == expected
    saved = recorder.saved["weights"]
    for number, w in enumerate(weights, start=1):
        assert np.array_equal(saved[f"layer{number}.weights"], w)
    for number, b in enumerate(biases, start=1):
        if b is not None:
            assert np.array_equal(saved[f"layer{number}.biases"], b)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_array_stats_agree_with_numpy(dtype):
    values = np.random.default_rng(3).normal(2.0, 0.5, size=(40, 7)).astype(dtype)
    stats = array_stats(values, np.empty_like(values))
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert stats["norm"] == pytest.approx(float(np.linalg.norm(values)), rel=tol)
    assert stats["mean"] == pytest.approx(float(values.mean()), rel=tol)
    assert stats["std"] == pytest.approx(float(values.std()), rel=tol * 10)
    assert stats["min"] == float(values.min())
    assert stats["max"] == float(values.max())


def _stepped_network():
    settings = Settings(model=ModelSettings(widths=(3,)), gradcheck=GradcheckSettings(False))
    parts = build(settings)
    loss, dvalues = parts.objective_factory()(parts.network.forward(parts.train.inputs))
    parts.network.backward(dvalues)
    return parts.network, parts.optimizer, loss


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("with_metrics", [False, True])
def test_non_finite_entries_are_found_with_and_without_metrics(bad, with_metrics):
    network, optimizer, loss = _stepped_network()
    network.dense[0].dbiases[0, 1] = bad
    values = step_metrics(network, optimizer, loss, 0.0) if with_metrics else None
    assert _first_non_finite(network, loss, values) == "the gradient of layer1.biases is not finite"


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_huge_but_finite_entries_are_not_called_non_finite():
    network, optimizer, loss = _stepped_network()
    network.dense[0].weights[0, 0] = 1e200  # its square overflows; the entry itself is finite
    assert not math.isfinite(float(np.dot(network.dense[0].weights.ravel(),
                                          network.dense[0].weights.ravel())))
    assert _first_non_finite(network, loss) is None
    assert _first_non_finite(network, loss, step_metrics(network, optimizer, loss, 0.0)) is None


def test_log_every_records_only_due_steps_and_the_last():
    settings = Settings(optimizer=OptimizerSettings(steps=10),
                        gradcheck=GradcheckSettings(enabled=False))
    settings = replace(settings, tracking=replace(settings.tracking, log_every=4))
    recorder = MemoryRecorder()
    train(settings, recorder)
    assert [s for s, _ in recorder.history["train/loss"]] == [0, 4, 8, 9]
