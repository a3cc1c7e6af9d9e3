"""Comparing two runs: their metric histories step by step, and the code and environment
each was recorded with.

Plain Python over what `records` reads back; no store needed, so the rules are easy to test.
A history is {metric: [(step, value), ...]} in step order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import zip_longest

History = Mapping[str, list[tuple[int, float]]]

# Tags whose change can change a result, in the order a reader should hear about them.
PROVENANCE_KEYS = ("git.commit", "git.dirty", "numpy.version", "blas.library", "blas.threads",
                   "compute.dtype", "config.hash", "data.digest")


@dataclass(frozen=True)
class Difference:
    """One (step, metric) where the runs disagree; a value is None where that run lacks it."""

    step: int
    metric: str
    original: float | None
    reproduced: float | None

    @property
    def amount(self) -> float:
        """|original - reproduced|; inf when a value is missing or only one is NaN."""
        if self.original is None or self.reproduced is None:
            return math.inf
        if math.isnan(self.original) or math.isnan(self.reproduced):
            return math.inf
        return abs(self.original - self.reproduced)

    def describe(self) -> str:
        where = f"step {self.step}, metric {self.metric}"
        if self.original is None or self.reproduced is None:
            side = "original" if self.reproduced is None else "reproduction"
            return f"{where}: recorded only in the {side}"
        return (f"{where}: original {self.original!r}, reproduced {self.reproduced!r}, "
                f"difference {self.original - self.reproduced:.3g}")


@dataclass(frozen=True)
class Verdict:
    """The outcome of comparing two histories within `tolerance`."""

    tolerance: float
    n_metrics: int
    n_points: int
    differences: list[Difference]  # beyond the tolerance, in (step, metric) order
    n_inexact: int  # points not bit-identical, even if within the tolerance

    @property
    def identical(self) -> bool:
        return not self.differences

    @property
    def first(self) -> Difference | None:
        return self.differences[0] if self.differences else None

    @property
    def largest(self) -> Difference | None:
        return max(self.differences, key=lambda d: d.amount, default=None)

    def describe(self) -> str:
        counted = f"{self.n_metrics} metrics, {self.n_points} points"
        if self.identical and self.n_inexact == 0:
            return f"IDENTICAL: {counted}, bit for bit"
        if self.identical:
            return (f"IDENTICAL within tolerance {self.tolerance:g}: {counted}; "
                    f"{self.n_inexact} points differ in their last bits")
        first = self.first
        at_step = sum(1 for d in self.differences if d.step == first.step)
        lines = [f"DIFFERENT: first at {first.describe()}",
                 f"  {at_step} metrics differ at step {first.step}; in all "
                 f"{len(self.differences)} of {self.n_points} points ({self.n_metrics} metrics) "
                 f"differ beyond tolerance {self.tolerance:g}"]
        if self.largest is not first:
            lines.append(f"  largest: {self.largest.describe()}")
        return "\n".join(lines)


def _by_step(points: list[tuple[int, float]]) -> dict[int, list[float]]:
    table: dict[int, list[float]] = {}
    for step, value in points:
        table.setdefault(step, []).append(value)
    return table


def _same(a: float, b: float, tolerance: float) -> bool:
    if a == b or (math.isnan(a) and math.isnan(b)):
        return True
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= tolerance


def _pair_up(metric: str, step: int, left: list[float], right: list[float]) -> list[Difference]:
    """Pair the values both runs logged for one (metric, step); None pads the shorter side."""
    return [Difference(step, metric, a, b) for a, b in zip_longest(left, right)]


def compare_histories(original: History, reproduced: History, tolerance: float = 0.0) -> Verdict:
    """Walk both histories step by step and collect every point that disagrees.

    Points agree when bit-identical (NaN matches NaN), or, with a tolerance, when both are
    finite and at most `tolerance` apart. A point only one run has always disagrees.
    """
    metrics = sorted(set(original) | set(reproduced))
    found: list[Difference] = []
    n_points = n_inexact = 0
    for metric in metrics:
        left, right = _by_step(original.get(metric, [])), _by_step(reproduced.get(metric, []))
        for step in sorted(set(left) | set(right)):
            for point in _pair_up(metric, step, left.get(step, []), right.get(step, [])):
                n_points += 1
                missing = point.original is None or point.reproduced is None
                if not missing and _same(point.original, point.reproduced, 0.0):
                    continue
                n_inexact += 1
                if missing or not _same(point.original, point.reproduced, tolerance):
                    found.append(point)
    found.sort(key=lambda d: (d.step, d.metric))
    return Verdict(tolerance, len(metrics), n_points, found, n_inexact)


def provenance_changes(original: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    """One line per code or environment fact that differs between two runs' tags."""
    changes = []
    for key in PROVENANCE_KEYS:
        before, after = original.get(key, "unrecorded"), now.get(key, "unrecorded")
        if before != after:
            changes.append(f"{key}: original {before}, now {after}")
    if original.get("git.dirty") == "true":
        changes.append("the original ran with uncommitted changes, which no record keeps: "
                       "its exact code cannot be restored")
    return changes
