"""Figures of a whole sweep, filed on its parent run. matplotlib is imported only to draw."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from .plots import _pyplot

MAX_LEGEND = 12  # more curves than this and a legend hides the plot


def _spans_decades(values: Sequence[float]) -> bool:
    positive = [v for v in values if v > 0]
    return len(positive) == len(values) and bool(values) and max(values) / min(values) > 100


def _finite(table, key: str):
    rows = table[table["final_loss"].map(lambda v: isinstance(v, float) and math.isfinite(v))]
    return rows[rows[key].notna()]


def final_loss_against(table, key: str, folder: Path) -> Path:
    """Final loss of each finished job against the swept `key`, saved as a PNG in `folder`.

    Numeric values go on a numeric axis (logarithmic when they span decades); anything else,
    such as widths lists, gets one evenly spaced position per distinct value.
    """
    plt = _pyplot()
    rows = _finite(table, key)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    numeric = all(isinstance(v, (int, float)) for v in rows[key])
    if numeric:
        ordered = rows.sort_values(key)
        ax.plot(ordered[key], ordered["final_loss"], marker="o", linestyle=":")
        if _spans_decades(list(ordered[key])):
            ax.set_xscale("log")
    else:
        labels = sorted({str(v) for v in rows[key]})
        where = {label: i for i, label in enumerate(labels)}
        ax.scatter([where[str(v)] for v in rows[key]], rows["final_loss"])
        ax.set_xticks(range(len(labels)), labels, rotation=30)
    losses = list(rows["final_loss"])
    if _spans_decades(losses):
        ax.set_yscale("log")  # losses spanning decades read better on a log axis
    left_out = len(table) - len(rows)
    ax.set_title(f"final loss by {key}" + (f" ({left_out} failed job(s) not shown)"
                                          if left_out else ""))
    ax.set_xlabel(key)
    ax.set_ylabel("final train/loss")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    path = folder / f"final_loss_by_{re.sub(r'[^A-Za-z0-9_.-]+', '_', key)}.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def loss_curves(curves: Mapping[str, Sequence[tuple[int, float]]], path: Path) -> Path:
    """train/loss against step for every job on one axis, saved as a PNG at `path`."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    every_loss = []
    for label, points in curves.items():
        finite = [(s, v) for s, v in points if math.isfinite(v)]
        every_loss += [v for _, v in finite]
        ax.plot([s for s, _ in finite], [v for _, v in finite], linewidth=1.2, label=label)
    if _spans_decades(every_loss):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("train/loss")
    ax.set_title(f"loss curves of {len(curves)} jobs")
    ax.grid(True, alpha=0.3)
    if 0 < len(curves) <= MAX_LEGEND:
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
