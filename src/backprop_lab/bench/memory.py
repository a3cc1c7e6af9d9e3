"""Memory: the peak of a large run beside the arrays one training step holds.

numpy reports every array it allocates to tracemalloc, so the traced peak is the peak of
the run's arrays, free of the interpreter's and libraries' own memory.
"""

from __future__ import annotations

import tracemalloc

import numpy as np

from ..runner import build, train
from .compute import Discarding, Size, settings_for
from .table import Table

MB = 2**20


def held_arrays(size: Size, dtype: str) -> dict[str, int]:
    """Bytes of every distinct array a step keeps, by owner: data, layers, objective, optimiser.

    Found by walking the attributes of each part after one step, so new buffers are counted
    without this function having to know their names. Views share their base's bytes once.
    """
    parts = build(settings_for(size, dtype, 1, 1))
    network, optimizer, objective = parts.network, parts.optimizer, parts.objective_factory()
    _, dvalues = objective(network.forward(parts.train.inputs), parts.train.targets)
    network.backward(dvalues)
    optimizer.step(network)
    owners = {"data": [parts.train.inputs], "layers": [*network.dense, *network.relu],
              "objective": [objective], "optimiser": [optimizer]}
    seen: set[int] = set()
    return {owner: sum(_new_bytes(_arrays_of(part), seen) for part in parts)
            for owner, parts in owners.items()}


def _arrays_of(part) -> list[np.ndarray]:
    """The arrays among `part`'s attributes, looking inside dicts (optimiser state)."""
    if isinstance(part, np.ndarray):
        return [part]
    values = part.values() if isinstance(part, dict) else vars(part).values()
    found = []
    for value in values:
        if isinstance(value, (np.ndarray, dict)):
            found += _arrays_of(value)
    return found


def _new_bytes(arrays: list[np.ndarray], seen: set[int]) -> int:
    total = 0
    for array in arrays:
        base = array if array.base is None else array.base
        if id(base) not in seen and isinstance(base, np.ndarray):
            seen.add(id(base))
            total += base.nbytes
    return total


def traced_run(size: Size, dtype: str, steps: int = 3) -> tuple[int, int]:
    """(peak bytes over the whole run, largest growth within any step after the first)."""
    marks: dict[str, int] = {}

    def after_step(done: int) -> None:
        current, peak = tracemalloc.get_traced_memory()
        if done == 1:
            marks["first_peak"], marks["settled"] = peak, current
            tracemalloc.reset_peak()

    tracemalloc.start()
    try:
        train(settings_for(size, dtype, steps, log_every=1), Discarding(), progress=after_step)
        later_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return max(marks["first_peak"], later_peak), later_peak - marks["settled"]


def memory_table(size: Size, dtype: str = "float32") -> Table:
    peak, growth = traced_run(size, dtype)
    held = held_arrays(size, dtype)
    total = sum(held.values())
    table = Table(f"Memory: {size.name} {dtype} run ({size.label})", ["measure", "MB"])
    for owner, nbytes in held.items():
        table.add(f"arrays held: {owner}", f"{nbytes / MB:,.1f}")
    table.add("arrays held: total", f"{total / MB:,.1f}")
    table.add("peak during the run (traced)", f"{peak / MB:,.1f}")
    table.add("peak / arrays held", f"{peak / total:.2f}x")
    table.add("largest growth within a step after the first", f"{growth / MB:,.2f}")
    table.notes += [
        "arrays held: every distinct numpy buffer after one step (data; each layer's "
        "weights, biases, their gradients, pre-activation, output, ReLU mask, dinputs; the "
        "objective's dvalues; the optimiser's update buffers)",
        "growth within a step: new memory a step allocates once the buffers exist; "
        "0 means every step writes into buffers it already has",
    ]
    return table
