"""Compute: one training step of the runner beside the matrix products alone and PyTorch.

Shape letters: N samples, F features into a layer, W its width.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..config import (
    ComputeSettings,
    DatasetSettings,
    GradcheckSettings,
    ModelSettings,
    OptimizerSettings,
    Settings,
    TrackingSettings,
)
from ..runner import MemoryRecorder, build, train
from . import torchstep
from .machine import blas_threads
from .table import Table, median, ms, rate, ratio

LR = 0.1


@dataclass(frozen=True)
class Size:
    """One network size of the compute table and how many steps to time at it."""

    name: str
    n_samples: int
    n_features: int
    widths: tuple[int, ...]
    bias: bool
    repeats: int

    @property
    def label(self) -> str:
        return f"{self.n_samples:,} x {self.n_features} -> {list(self.widths)}"


SIZES = (
    Size("founding", 50, 3, (2,), False, 2000),  # the book's first example, as experiments/
    Size("medium", 1000, 64, (128, 64), True, 200),
    Size("large", 16384, 256, (512, 512), True, 4),
    Size("xlarge", 65536, 512, (1024, 1024), True, 2),
)
# The same rows, shrunk so the whole table takes a second: for tests, not for numbers.
TINY_SIZES = (
    Size("founding", 50, 3, (2,), False, 20),
    Size("medium", 64, 8, (16, 8), True, 3),
    Size("large", 128, 16, (32, 32), True, 2),
    Size("xlarge", 256, 32, (64, 64), True, 2),
)
DTYPES = ("float32", "float64")


class Discarding(MemoryRecorder):
    """Keeps what a run reports except the step metrics, which it drops once computed."""

    def metrics(self, step, values):
        pass


def settings_for(size: Size, dtype: str, steps: int, log_every: int) -> Settings:
    return Settings(
        dataset=DatasetSettings(n_samples=size.n_samples, n_features=size.n_features),
        model=ModelSettings(widths=size.widths, bias=size.bias),
        optimizer=OptimizerSettings(lr=LR, steps=steps),
        gradcheck=GradcheckSettings(enabled=False),
        compute=ComputeSettings(dtype=dtype),
        tracking=TrackingSettings(log_every=log_every, log_arrays=False),
    )


class Products:
    """The matrix products of one step alone, on arrays allocated once: the step's floor.

    Per layer: forward, dweights and, except for the first layer, dinputs.
    """

    def __init__(self, size: Size, dtype: str, rng: np.random.Generator):
        def normal(*shape):
            return rng.standard_normal(shape).astype(dtype)

        inputs = normal(size.n_samples, size.n_features)  # (N, F)
        self.layers = []
        for index, width in enumerate(size.widths):
            n_in = inputs.shape[1]
            output = normal(size.n_samples, width)  # (N, W), the next layer's inputs
            dinputs = None if index == 0 else normal(size.n_samples, n_in)  # (N, F)
            self.layers.append((inputs, normal(n_in, width), output,
                                normal(size.n_samples, width), normal(n_in, width), dinputs))
            inputs = output

    def __call__(self) -> None:
        for inputs, weights, output, dvalues, dweights, dinputs in self.layers:
            np.matmul(inputs, weights, out=output)  # (N, F) @ (F, W) -> (N, W)
            np.matmul(inputs.T, dvalues, out=dweights)  # (F, N) @ (N, W) -> (F, W)
            if dinputs is not None:
                np.matmul(dvalues, weights.T, out=dinputs)  # (N, W) @ (W, F) -> (N, F)


def torch_step(size: Size, dtype: str) -> Callable[[], float] | None:
    """PyTorch's step on the same data and initial weights as the runner, threads matched."""
    parts = build(settings_for(size, dtype, 1, log_every=1))
    weights = [d.weights for d in parts.network.dense]
    biases = [d.biases for d in parts.network.dense] if size.bias else None
    return torchstep.make_step(parts.train.inputs, weights, biases, lr=LR,
                               threads=blas_threads())


def measure(size: Size, dtype: str, rng: np.random.Generator) -> dict[str, list[float]]:
    """Seconds per step of the runner, the products alone and PyTorch, interleaved.

    runner.train runs with log_every=2, so its steps alternate between recording nothing
    ("plain") and computing every metric ("logged"). After each plain step, before the
    next, the products and PyTorch's step run once each: all three meet the same load.
    Warm-up calls (the runner's step 0, torch's first call) are left out.
    """
    steps = 2 * size.repeats + 2
    products, torch = Products(size, dtype, rng), torch_step(size, dtype)
    times: dict[str, list[float]] = {"plain": [], "logged": [], "products": [], "torch": []}
    clock = [time.perf_counter()]

    def between_steps(done: int) -> None:
        step, took = done - 1, time.perf_counter() - clock[0]
        if 0 < step < steps - 1:
            times["logged" if step % 2 == 0 else "plain"].append(took)
        if step % 2 == 1 or step == 0:
            times["products"].append(_timed(products))
            if torch is not None:
                times["torch"].append(_timed(torch))
        clock[0] = time.perf_counter()

    train(settings_for(size, dtype, steps, log_every=2), Discarding(), progress=between_steps)
    times["torch"] = times["torch"][1:]
    return times


def _timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


COLUMNS = ["size", "dtype", "products ms", "step ms", "step / products", "step+metrics ms",
           "torch ms", "torch / products", "steps/s", "torch steps/s", "ours / torch"]


def compute_table(sizes=SIZES, seed: int = 0,
                  done: Callable[[str], None] | None = None) -> Table:
    """Every size in both dtypes, each row measured side by side.

    `done`, when given, hears the name of each row as it is finished.
    """
    rng = np.random.default_rng(seed)
    table = Table("Compute: one training step (medians)", COLUMNS)
    for size in sizes:
        for dtype in DTYPES:
            table.add(*_row(size, dtype, rng))
            if done is not None:
                done(f"{size.name} {dtype}")
    table.notes += [
        "products: forward, dweights and dinputs (none for the first layer) on "
        "preallocated arrays, the floor any implementation of this step pays",
        "step: one step of runner.train's loop that records nothing; step+metrics: a step "
        "that also computes every per-step metric (as tracking.log_every=1 does each step)",
        "torch: the same maths with autograd on the CPU, threads matched to numpy's BLAS; "
        "the three are interleaved step by step",
        "ours / torch: our steps per second over torch's; above 1 means we are faster",
        "sizes: " + "; ".join(f"{s.name} {s.label}" for s in sizes),
    ]
    return table


def _row(size: Size, dtype: str, rng: np.random.Generator) -> list[str]:
    times = measure(size, dtype, rng)
    products, step = median(times["products"]), median(times["plain"])
    torch = median(times["torch"])
    return [size.name, dtype, ms(products), ms(step), ratio(step, products),
            ms(median(times["logged"])), ms(torch), ratio(torch, products),
            rate(step), rate(torch), ratio(torch, step)]
