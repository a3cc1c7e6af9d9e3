"""Central finite differences, in float64, against the hand-written gradients."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .network import Network

STEP = 1e-6  # finite-difference step h: small against the data, large against float64 noise
MIN_STEP = 1e-10  # the smallest h tried when a step crosses a ReLU kink
# Rounding leaves each loss value off by a few units in the last place of its size; the
# difference of two such values, divided by 2h, carries that error into the estimate.
ROUNDING = 16 * np.finfo(np.float64).eps


def relative_error(analytic: np.ndarray, numeric: np.ndarray, slack=0.0) -> np.ndarray:
    """|a - n| / (|a| + |n|), and 0 where both are exactly zero (a dead unit agrees with itself).

    `slack` (scalar or per entry) is the part of |a - n| that rounding alone can explain in
    the numeric estimate; only the disagreement beyond it counts.
    """
    analytic, numeric = np.asarray(analytic), np.asarray(numeric)
    scale = np.abs(analytic) + np.abs(numeric)
    diff = np.maximum(np.abs(analytic - numeric) - slack, 0.0)
    return np.divide(diff, scale, out=np.zeros_like(diff), where=scale > 0)


def numerical_gradient(
    loss: Callable[[], float],
    array: np.ndarray,
    indices: np.ndarray,
    step: float = STEP,
    crossed: Callable[[], bool] | None = None,
    rounding: np.ndarray | None = None,
) -> np.ndarray:
    """d loss / d array[i] for each flat index i, by (loss(x + h) - loss(x - h)) / 2h.

    `array` is perturbed in place and restored; `loss` must read it afresh on every call.
    `crossed`, when given, is asked after each loss evaluation whether the perturbation moved
    some ReLU input across 0; if so h shrinks (down to MIN_STEP), since a difference taken
    across the kink measures the kink, not the gradient. Entries that still cross are NaN.
    `rounding`, when given (one slot per index), receives the bound on each estimate's
    rounding error, ROUNDING * (|loss(x + h)| + |loss(x - h)|) / 2h: the losses here all sum
    non-negative terms, so their size bounds the size of what was summed.
    """
    grads = np.empty(len(indices), dtype=np.float64)
    flat = array.reshape(-1)  # a view, so writes reach the array
    for k, index in enumerate(indices):
        h, original = step, flat[index]
        while True:
            flat[index] = original + h
            plus, kink = loss(), crossed is not None and crossed()
            flat[index] = original - h
            minus, kink = loss(), kink or (crossed is not None and crossed())
            flat[index] = original
            if not kink or h / 100 < MIN_STEP:
                break
            h /= 100
        grads[k] = np.nan if kink else (plus - minus) / (2 * h)
        if rounding is not None:
            rounding[k] = ROUNDING * (abs(plus) + abs(minus)) / (2 * h)
    return grads


@dataclass
class GradCheckReport:
    """The outcome of one check: the worst relative error and where it was found."""

    max_rel_error: float
    worst_entry: str
    n_checked: int
    n_on_kink: int = 0  # entries skipped: every step tried moved a ReLU input across 0
    max_raw_error: float = 0.0  # the largest relative error before rounding is discounted
    per_array: dict[str, float] = field(default_factory=dict)


def _as_float64(network: Network) -> Network:
    twin = copy.deepcopy(network)
    for dense in twin.dense:
        dense.weights = dense.weights.astype(np.float64)
        dense.dweights = np.zeros_like(dense.weights)
        if dense.biases is not None:
            dense.biases = dense.biases.astype(np.float64)
            dense.dbiases = np.zeros_like(dense.biases)
        dense.output = dense.dinputs = None
    for relu in twin.relu:
        relu.output = relu.dinputs = relu.mask = None
    return twin


def check_network(
    network: Network,
    inputs: np.ndarray,
    objective_factory: Callable[[], Callable],
    *,
    rng: np.random.Generator,
    max_entries: int,
    max_samples: int,
    targets: np.ndarray | None = None,
) -> GradCheckReport:
    """Compare every parameter gradient of `network` with finite differences.

    The check runs on a float64 copy (the network itself is untouched), on the first
    `max_samples` rows of `inputs` (and of `targets`, for objectives that need them), and
    on at most `max_entries` entries of each array, chosen by `rng`, so that it stays cheap
    on large configurations.
    """
    twin = _as_float64(network)
    inputs = np.ascontiguousarray(inputs[:max_samples], dtype=np.float64)  # (n, F), n <= N
    if targets is not None:
        targets = targets[:max_samples]  # (n,) class indices or (n, T) values
        if targets.dtype.kind == "f":
            targets = targets.astype(np.float64)
    objective = objective_factory()

    def evaluate() -> tuple[float, np.ndarray]:
        # Unlabelled objectives may take the output alone.
        output = twin.forward(inputs)  # (n, W_last)
        return objective(output) if targets is None else objective(output, targets)

    def loss() -> float:
        return evaluate()[0]

    _, dvalues = evaluate()
    twin.backward(dvalues)
    baseline = [relu.mask.copy() for relu in twin.relu]

    def crossed() -> bool:
        return any(not np.array_equal(relu.mask, mask) for relu, mask in zip(twin.relu, baseline))

    report = GradCheckReport(max_rel_error=0.0, worst_entry="", n_checked=0)
    for name, parameter, gradient in list(twin.parameters()):
        analytic = gradient.reshape(-1).copy()
        if parameter.size <= max_entries:
            indices = np.arange(parameter.size)
        else:
            indices = np.sort(rng.choice(parameter.size, size=max_entries, replace=False))
        rounding = np.empty(len(indices))
        numeric = numerical_gradient(loss, parameter, indices, crossed=crossed, rounding=rounding)
        on_kink = np.isnan(numeric)
        report.n_on_kink += int(on_kink.sum())
        errors = np.where(on_kink, 0.0, relative_error(analytic[indices], numeric, rounding))
        raw = np.where(on_kink, 0.0, relative_error(analytic[indices], numeric))
        report.max_raw_error = max(report.max_raw_error, float(raw.max()))
        worst = int(np.argmax(errors))
        report.per_array[name] = float(errors[worst])
        report.n_checked += len(indices)
        if errors[worst] >= report.max_rel_error:
            position = np.unravel_index(indices[worst], parameter.shape)
            report.max_rel_error = float(errors[worst])
            report.worst_entry = f"{name}[{', '.join(str(int(p)) for p in position)}]"
    return report
