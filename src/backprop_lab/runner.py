"""The training loop: forward, loss, backward, record, step, repeated.

The runner reports what happens to a recorder it is given (see `Recorder`); it never
knows whether that is MLflow or the in-memory recorder the tests use.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from . import data, gradcheck, shapes
from .config import Settings
from .network import Network
from .objectives import OBJECTIVES, accuracy
from .optimizers import Optimizer, make_optimizer

log = logging.getLogger(__name__)

STAT_NAMES = ("norm", "mean", "std", "min", "max")


class Recorder(Protocol):
    """What the runner reports to. Implemented by MemoryRecorder and tracking.MlflowRecorder."""

    def dataset(self, dataset: data.Dataset, context: str = "training") -> None: ...

    def shapes(self, entries: list[shapes.ShapeEntry]) -> None: ...

    def metrics(self, step: int, values: dict[str, float]) -> None: ...

    def arrays(self, name: str, arrays: dict[str, np.ndarray]) -> None: ...


class GradientCheckError(RuntimeError):
    """The hand-written gradients disagree with finite differences beyond the tolerance."""


class Diverged(RuntimeError):
    """A loss, gradient or weight stopped being finite."""

    def __init__(self, step: int, reason: str, lr: float | None = None):
        now = "" if lr is None else f"={lr:g}; try {lr / 10:g}"
        super().__init__(
            f"training diverged at step {step}: {reason}. "
            f"Lower the learning rate (optimizer.lr{now}) and run again."
        )
        self.step = step
        self.reason = reason


@dataclass
class MemoryRecorder:
    """A recorder that keeps everything in lists and dicts: for tests and for quick looks."""

    datasets: list[data.Dataset] = field(default_factory=list)
    dataset_contexts: list[str] = field(default_factory=list)  # "training", "validation"
    shape_entries: list[shapes.ShapeEntry] = field(default_factory=list)
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    saved: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def dataset(self, dataset, context="training"):
        self.datasets.append(dataset)
        self.dataset_contexts.append(context)

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
    # Measured on whole datasets after the last step, when there are targets or a
    # validation set: train/loss, train/accuracy, val/loss, val/accuracy.
    evaluation: dict[str, float] = field(default_factory=dict)


def array_stats(values: np.ndarray, scratch: np.ndarray | None = None) -> dict[str, float]:
    """norm, mean, std, min and max of an array, as plain floats.

    `scratch`, an array of the same size and dtype, receives the deviations from the mean
    that std needs, so a caller that keeps one allocates nothing per call.
    """
    flat = values.reshape(-1)  # (n,), a view of the contiguous array
    mean = float(flat.mean())
    out = None if scratch is None else scratch.reshape(-1)
    deviations = np.subtract(flat, mean, out=out)  # (n,) - () -> (n,)
    return {
        # np.linalg.norm computes the same dot product, behind more checks
        "norm": math.sqrt(float(np.dot(flat, flat))),  # (n,) @ (n,) -> ()
        "mean": mean,
        "std": math.sqrt(float(np.dot(deviations, deviations)) / flat.size),  # (n,) @ (n,) -> ()
        "min": float(flat.min()),
        "max": float(flat.max()),
    }


def step_metrics(network: Network, optimizer: Optimizer, loss: float, output_mean: float,
                 scratch: dict[str, np.ndarray] | None = None) -> dict:
    """Every per-step metric: loss, and for each layer its arrays, update ratio and dead ReLUs.

    `scratch` (name -> array) keeps the buffers array_stats works in from one step to the next.
    """
    scratch = {} if scratch is None else scratch
    values = {"train/loss": loss, "train/output_mean": output_mean}
    for name, parameter, gradient in network.parameters():
        layer, array = name.split(".")
        work = scratch.get(name)
        if work is None or work.shape != parameter.shape or work.dtype != parameter.dtype:
            work = scratch[name] = np.empty_like(parameter)
        for stat, value in array_stats(parameter, work).items():
            values[f"param/{name}/{stat}"] = value
        for stat, value in array_stats(gradient, work).items():
            values[f"grad/{layer}.d{array}/{stat}"] = value
        values[f"update/{name}/ratio"] = optimizer.update_ratio(name, parameter, gradient)
    for number, relu in enumerate(network.relu, start=1):
        values[f"relu/layer{number}/dead_fraction"] = relu.dead_fraction
    return values


def _first_non_finite(network: Network, loss: float, values: dict | None = None) -> str | None:
    """What stopped being finite, or None.

    `values`, this step's metrics when it has them, answer from their min and max: a NaN
    or an infinity in an array always shows in one of the two.
    """
    if not math.isfinite(loss):
        return f"the loss is {loss}"
    for name, parameter, gradient in network.parameters():
        layer, array = name.split(".")
        if not _finite(gradient, values, f"grad/{layer}.d{array}"):
            return f"the gradient of {name} is not finite"
        if not _finite(parameter, values, f"param/{name}"):
            return f"{name} is not finite"
    return None


def _finite(array: np.ndarray, values: dict | None, key: str) -> bool:
    if values is not None:
        return math.isfinite(values[f"{key}/min"]) and math.isfinite(values[f"{key}/max"])
    flat = array.reshape(-1)  # (n,), a view of the contiguous array
    # One BLAS call screens the usual case: the sum of squares is finite only if every entry
    # is. It can also overflow on huge finite entries, so a failed screen is checked exactly.
    squares = np.dot(flat, flat)  # (n,) @ (n,) -> ()
    return math.isfinite(squares) or bool(np.isfinite(flat).all())


@dataclass
class Parts:
    """Everything a run is made of, built from its settings and seed."""

    train: data.Dataset  # the rows the steps learn from
    validation: data.Dataset | None  # held-out rows, only evaluated
    network: Network
    objective_factory: Callable
    optimizer: Optimizer
    check_rng: np.random.Generator  # picks the entries the gradient check probes
    batches: data.Batches  # the (inputs, targets) of each step


def build(settings: Settings) -> Parts:
    """The data, network, objective and optimiser of a run, from its seed.

    Randomness flows from one SeedSequence made from `settings.seed`, in separate streams:
    one draws the data and then the initial weights, one picks the entries the gradient
    check probes, one shuffles mini-batches and one splits off validation rows. So switching
    the check, the batch size or the split on or off never changes the data or the weights.
    """
    model_stream, check_stream, batch_stream, split_stream = (
        np.random.SeedSequence(settings.seed).spawn(4))
    rng = np.random.default_rng(model_stream)
    dtype = np.dtype(settings.compute.dtype)
    ds = settings.dataset
    objective_factory = OBJECTIVES[settings.objective.name]
    dataset = data.load(ds, objective_factory.needs, rng=rng, dtype=dtype)
    train_set, validation = data.split(dataset, ds.validation_fraction,
                                       rng=np.random.default_rng(split_stream))
    if ds.standardize:
        train_set, validation = data.standardize(train_set, validation)
    network = Network(
        train_set.shape[1],
        settings.model.widths,
        rng=rng,
        init_scale=settings.model.init_scale,
        bias=settings.model.bias,
        dtype=dtype,
        output_width=dataset.n_outputs if objective_factory.needs else None,
    )
    batches = data.Batches(train_set, settings.optimizer.batch_size,
                           np.random.default_rng(batch_stream))
    return Parts(train_set, validation, network, objective_factory,
                 _optimizer(settings), np.random.default_rng(check_stream), batches)


def _optimizer(settings: Settings) -> Optimizer:
    o = settings.optimizer
    if o.name == "adam":
        return make_optimizer("adam", lr=o.lr, beta1=o.beta1, beta2=o.beta2,
                              epsilon=o.epsilon, decay=o.decay)
    return make_optimizer("sgd", lr=o.lr, momentum=o.momentum, decay=o.decay)


def run_gradcheck(settings, network, dataset, objective_factory, rng) -> float:
    g = settings.gradcheck
    report = gradcheck.check_network(
        network, dataset.inputs, objective_factory, rng=rng,
        max_entries=g.max_entries, max_samples=g.max_samples, targets=dataset.targets,
    )
    log.info("gradient check: largest relative error %.3g at %s beyond rounding (%.3g before), "
             "%d entries, %d on a ReLU kink", report.max_rel_error, report.worst_entry,
             report.max_raw_error, report.n_checked, report.n_on_kink)
    if report.max_rel_error > g.tolerance:
        raise GradientCheckError(
            f"gradient check failed: relative error {report.max_rel_error:.3g} at "
            f"{report.worst_entry} exceeds gradcheck.tolerance={g.tolerance:g}. The hand-written "
            "gradients disagree with finite differences; if the data sits on ReLU's kink, try "
            "another seed, or raise gradcheck.tolerance."
        )
    return report.max_rel_error


def evaluate(network: Network, objective, dataset: data.Dataset, prefix: str) -> dict:
    """{prefix}/loss, and {prefix}/accuracy for class labels, over a whole dataset.

    This runs a forward pass, so call it only once the step's gradients are taken.
    """
    output = network.forward(dataset.inputs)  # (N, W_last)
    values = {f"{prefix}/loss": objective(output, dataset.targets)[0]}
    if dataset.labels == "classes":
        values[f"{prefix}/accuracy"] = accuracy(output, dataset.targets)
    return values


# Overflow is expected when a run diverges; the loop names it (Diverged) instead of warning.
@np.errstate(over="ignore", invalid="ignore")
def train(
    settings: Settings,
    recorder: Recorder,
    progress: Callable[[int], None] | None = None,
) -> TrainResult:
    """Run one experiment end to end and report it to `recorder`.

    `progress`, when given, is called with the number of steps done after each step.
    Raises GradientCheckError or Diverged; whatever was reported before that is kept.
    """
    parts = build(settings)
    network, optimizer, objective = parts.network, parts.optimizer, parts.objective_factory()
    # A separate instance: objectives may keep buffers sized for the training batch.
    held_out = parts.objective_factory()
    _announce(parts, recorder)

    check_error = None
    if settings.gradcheck.enabled:
        check_error = run_gradcheck(settings, network, parts.train, parts.objective_factory,
                                    parts.check_rng)
        recorder.metrics(0, {"gradcheck/max_rel_error": check_error})

    steps, log_every = settings.optimizer.steps, settings.tracking.log_every
    initial_loss = loss = float("nan")
    scratch: dict[str, np.ndarray] = {}  # step_metrics' work buffers, reused every step
    for step in range(steps):
        inputs, targets = next(parts.batches)  # (B, F), (B,) or (B, T) or None
        output = network.forward(inputs)  # (B, W_last)
        loss, dvalues = objective(output, targets)
        network.backward(dvalues)
        if step == 0:
            initial_loss = loss
            recorder.shapes(shapes.ledger(network, dvalues))
        due = step % log_every == 0 or step == steps - 1
        fault = _record_step(recorder, step, parts, held_out, (loss, output, targets), due,
                             scratch)
        if fault:
            raise Diverged(step, fault, lr=settings.optimizer.lr)
        optimizer.step(network)
        if progress is not None:
            progress(step + 1)

    evaluation = _final_evaluation(parts, held_out)
    if evaluation:
        log.info("after %d steps: %s", steps,
                 ", ".join(f"{k} {v:.4g}" for k, v in evaluation.items()))
        recorder.metrics(steps, evaluation)
    if settings.tracking.log_arrays:
        recorder.arrays("weights", {name: p for name, p, _ in network.parameters()})
        recorder.arrays("gradients", {f"d{name}": g for name, _, g in network.parameters()})
    return TrainResult(initial_loss, loss, steps, network.n_parameters, check_error, evaluation)


def _announce(parts: Parts, recorder: Recorder) -> None:
    """Log the run's shapes once, and report the datasets it uses."""
    network = parts.network
    log.info("data %s %s, network widths %s, %d parameters", parts.train.name,
             parts.train.shape, [d.weights.shape[1] for d in network.dense],
             network.n_parameters)
    recorder.dataset(parts.train, "training")
    if parts.validation is not None:
        recorder.dataset(parts.validation, "validation")


def _record_step(recorder, step, parts, held_out, result, due, scratch) -> str | None:
    """Report this step's values when `due`, or when something stopped being finite.

    `result` is the step's (loss, output, targets). Returns what stopped being finite, or
    None. A step that computes its metrics answers the finiteness question from their min
    and max, without another pass over the arrays.
    """
    loss, output, _ = result
    metrics = None
    if due:
        metrics = step_metrics(parts.network, parts.optimizer, loss, float(output.mean()),
                               scratch)
    fault = _first_non_finite(parts.network, loss, metrics)
    if fault or due:
        recorder.metrics(step, _step_values(parts, held_out, result, fault, metrics, scratch))
    return fault


def _step_values(parts: Parts, held_out, result, fault, metrics, scratch) -> dict[str, float]:
    """step_metrics (`metrics` when already computed), plus accuracy on the step's batch and
    the validation set's scores."""
    loss, output, targets = result
    values = metrics or step_metrics(parts.network, parts.optimizer, loss,
                                     float(output.mean()), scratch)
    if parts.train.labels == "classes":
        values["train/accuracy"] = accuracy(output, targets)
    if parts.validation is not None and not fault:
        # After backward: this extra forward pass cannot disturb the step's gradients.
        values.update(evaluate(parts.network, held_out, parts.validation, "val"))
    return values


def _final_evaluation(parts: Parts, objective) -> dict[str, float]:
    """Loss and accuracy on the whole training and validation sets after the last step.

    Skipped for unlabelled data without a validation set, whose record stays as it was.
    """
    if parts.train.labels is None and parts.validation is None:
        return {}
    values = evaluate(parts.network, objective, parts.train, "train")
    if parts.validation is not None:
        values.update(evaluate(parts.network, objective, parts.validation, "val"))
    return values
