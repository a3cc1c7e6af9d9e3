"""Tables the benchmark prints: markdown, so they read in a terminal and paste into the README."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Table:
    """A titled table: named columns, rows of cells, and notes printed under it."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def render(self) -> str:
        widths = [max(len(c), *(len(r[i]) for r in self.rows)) if self.rows else len(c)
                  for i, c in enumerate(self.columns)]
        lines = [f"### {self.title}", ""]
        lines.append(_line(self.columns, widths))
        lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        lines += [_line(row, widths) for row in self.rows]
        lines += [""] + [f"- {note}" for note in self.notes] if self.notes else []
        return "\n".join(lines) + "\n"


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def ms(seconds: float) -> str:
    """Seconds shown in milliseconds with three significant figures."""
    if seconds != seconds:  # NaN: nothing was measured
        return "-"
    millis = seconds * 1e3
    return f"{millis:,.0f}" if millis >= 100 else f"{millis:.3g}"


def ratio(numerator: float, denominator: float) -> str:
    if not denominator or numerator != numerator or denominator != denominator:
        return "-"
    return f"{numerator / denominator:.2f}x"


def rate(seconds: float) -> str:
    """Seconds per step shown as steps per second."""
    if not seconds or seconds != seconds:
        return "-"
    per_second = 1.0 / seconds
    return f"{per_second:,.0f}" if per_second >= 100 else f"{per_second:.3g}"
