"""Figures made from what a run reported. matplotlib is imported only when a plot is drawn."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no screen is assumed
    import matplotlib.pyplot as plt

    return plt


def loss_curve(points: Sequence[tuple[int, float]], path: Path, title: str) -> Path:
    """train/loss against step, saved as a PNG at `path`."""
    plt = _pyplot()
    steps = [s for s, _ in points]
    losses = [v for _, v in points]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(steps, losses, color="tab:blue", linewidth=1.5)
    ax.set_xlabel("step")
    ax.set_ylabel("train/loss")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if losses and min(losses) > 0 and max(losses) / min(losses) > 100:
        ax.set_yscale("log")  # losses spanning decades read better on a log axis
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
