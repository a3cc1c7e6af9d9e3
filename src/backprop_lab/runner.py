"""The training loop: forward, loss, backward, record, step, repeated.

The runner reports what happens to a recorder it is given (see `Recorder`); it never
knows whether that is MLflow or the in-memory recorder the tests use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from . import data, gradcheck, shapes
from .config import Settings
from .network import Network
from .objectives import OBJECTIVES
from .optimizers import SGD

log = logging.getLogger(__name__)

STAT_NAMES = ("norm", "mean", "std", "min", "max")


class Recorder(Protocol):
    """What the runner reports to. Implemented by MemoryRecorder and tracking.MlflowRecorder."""

    def dataset(self, dataset: data.Dataset) -> None: ...

    def shapes(self, entries: list[shapes.ShapeEntry]) -> None: ...

    def metrics(self, step: int, values: dict[str, float]) -> None: ...

    def arrays(self, name: str, arrays: dict[str, np.ndarray]) -> None: ...


class GradientCheckError(RuntimeError):
    """The hand-written gradients disagree with finite differences beyond the tolerance."""


class Diverged(RuntimeError):
    """A loss, gradient or weight stopped being finite."""

    def __init__(self, step: int, reason: str):
        super().__init__(
            f"training diverged at step {step}: {reason}. "
            "Lower the learning rate (optimizer.lr) and run again."
        )
        self.step = step
        self.reason = reason


@dataclass
class MemoryRecorder:
    """A recorder that keeps everything in lists and dicts: for tests and for quick looks."""

    datasets: list[data.Dataset] = field(default_factory=list)
    shape_entries: list[shapes.ShapeEntry] = field(default_factory=list)
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    saved: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def dataset(self, dataset):
        self.datasets.append(dataset)

    def shapes(self, entries):
        self.shape_entries = list(entries)

    def metrics(self, step, values):
        for key, value in values.items():
            self.history.setdefault(key, []).append((step, value))

    def arrays(self, name, arrays):
        self.saved[name] = {k: np.array(v, copy=True) for k, v in arrays.items()}


@dataclass
class TrainResult:
    """What a finished run returns; the full record lives in the recorder."""

    initial_loss: float
    final_loss: float
    steps: int
    n_parameters: int
    gradcheck_error: float | None = None


def array_stats(values: np.ndarray) -> dict[str, float]:
    """norm, mean, std, min and max of an array, as plain floats."""
    return {
        "norm": float(np.linalg.norm(values)),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
    }


def step_metrics(network: Network, optimizer: SGD, loss: float, output_mean: float) -> dict:
    """Every per-step metric: loss, and for each layer its arrays, update ratio and dead ReLUs."""
    values = {"train/loss": loss, "train/output_mean": output_mean}
    for name, parameter, gradient in network.parameters():
        layer, array = name.split(".")
        for stat, value in array_stats(parameter).items():
            values[f"param/{name}/{stat}"] = value
        for stat, value in array_stats(gradient).items():
            values[f"grad/{layer}.d{array}/{stat}"] = value
        values[f"update/{name}/ratio"] = optimizer.update_ratio(parameter, gradient)
    for number, relu in enumerate(network.relu, start=1):
        values[f"relu/layer{number}/dead_fraction"] = relu.dead_fraction
    return values


def _first_non_finite(network: Network, loss: float) -> str | None:
    if not np.isfinite(loss):
        return f"the loss is {loss}"
    for name, parameter, gradient in network.parameters():
        if not np.isfinite(gradient).all():
            return f"the gradient of {name} is not finite"
        if not np.isfinite(parameter).all():
            return f"{name} is not finite"
    return None


def build(settings: Settings):
    """The dataset, network, objective and optimiser of a run, from its seed.

    Randomness flows from one SeedSequence made from `settings.seed`: one stream draws the
    data and then the initial weights, another picks the entries the gradient check probes,
    so switching the check on or off never changes the data or the weights.
    """
    model_stream, check_stream = np.random.SeedSequence(settings.seed).spawn(2)
    rng = np.random.default_rng(model_stream)
    dtype = np.dtype(settings.compute.dtype)
    ds = settings.dataset
    dataset = data.BUILDERS[ds.name](ds.n_samples, ds.n_features, rng=rng, dtype=dtype)
    network = Network(
        ds.n_features,
        settings.model.widths,
        rng=rng,
        init_scale=settings.model.init_scale,
        bias=settings.model.bias,
        dtype=dtype,
    )
    objective_factory = OBJECTIVES[settings.objective.name]
    optimizer = SGD(settings.optimizer.lr)
    return dataset, network, objective_factory, optimizer, np.random.default_rng(check_stream)


def run_gradcheck(settings, network, dataset, objective_factory, rng) -> float:
    g = settings.gradcheck
    report = gradcheck.check_network(
        network, dataset.inputs, objective_factory, rng=rng,
        max_entries=g.max_entries, max_samples=g.max_samples,
    )
    log.info("gradient check: largest relative error %.3g at %s (%d entries, %d on a ReLU kink)",
             report.max_rel_error, report.worst_entry, report.n_checked, report.n_on_kink)
    if report.max_rel_error > g.tolerance:
        raise GradientCheckError(
            f"gradient check failed: relative error {report.max_rel_error:.3g} at "
            f"{report.worst_entry} exceeds gradcheck.tolerance={g.tolerance:g}. The hand-written "
            "gradients disagree with finite differences; if the data sits on ReLU's kink, try "
            "another seed, or raise gradcheck.tolerance."
        )
    return report.max_rel_error


def train(
    settings: Settings,
    recorder: Recorder,
    progress: Callable[[int], None] | None = None,
) -> TrainResult:
    """Run one experiment end to end and report it to `recorder`.

    `progress`, when given, is called with the number of steps done after each step.
    Raises GradientCheckError or Diverged; whatever was reported before that is kept.
    """
    dataset, network, objective_factory, optimizer, check_rng = build(settings)
    objective = objective_factory()
    inputs = dataset.inputs  # (N, F)
    log.info("data %s %s, network widths %s, %d parameters",
             dataset.name, inputs.shape, list(settings.model.widths), network.n_parameters)
    recorder.dataset(dataset)

    check_error = None
    if settings.gradcheck.enabled:
        check_error = run_gradcheck(settings, network, dataset, objective_factory, check_rng)
        recorder.metrics(0, {"gradcheck/max_rel_error": check_error})

    steps, log_every = settings.optimizer.steps, settings.tracking.log_every
    initial_loss = loss = float("nan")
    for step in range(steps):
        output = network.forward(inputs)  # (N, W_last)
        loss, dvalues = objective(output)
        network.backward(dvalues)
        if step == 0:
            initial_loss = loss
            recorder.shapes(shapes.ledger(network, dvalues))
        fault = _first_non_finite(network, loss)
        if fault or step % log_every == 0 or step == steps - 1:
            output_mean = float(output.mean())
            recorder.metrics(step, step_metrics(network, optimizer, loss, output_mean))
        if fault:
            raise Diverged(step, fault)
        optimizer.step(network)
        if progress is not None:
            progress(step + 1)

    if settings.tracking.log_arrays:
        recorder.arrays("weights", {name: p for name, p, _ in network.parameters()})
        recorder.arrays("gradients", {f"d{name}": g for name, _, g in network.parameters()})
    return TrainResult(initial_loss, loss, steps, network.n_parameters, check_error)
