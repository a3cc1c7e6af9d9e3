"""Figures made from what a run reported. matplotlib is imported only when a plot is drawn.

Curves arrive as {metric name: [(step, value), ...]}, the shape diagram as the run's shape
ledger (shapes.ShapeEntry rows), so every picture is drawn from what the code actually did.
"""

from __future__ import annotations

import math
import re
import textwrap
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .shapes import ShapeEntry

Curve = Sequence[tuple[int, float]]

LOSS_KEY = "train/loss"
GRAD_NORM = re.compile(r"^grad/(?P<name>.+)/norm$")
DEAD_RELU = re.compile(r"^relu/(?P<layer>.+)/dead_fraction$")
# A log axis at most this high and spanning at most this ratio: beyond, matplotlib's tick
# labelling overflows (seen with a diverging run's losses near 1e300).
LOG_CEILING, LOG_SPAN = 1e250, 1e200
MAX_LEGEND = 12  # more lines than this get colours by depth and a legend for the ends only
DIAGRAM_LAYERS = 8  # the shape diagram draws at most this many layers' rows


def plotted(key: str) -> bool:
    """True for the metrics the run's pictures draw, so a recorder keeps only those."""
    return key == LOSS_KEY or bool(GRAD_NORM.match(key) or DEAD_RELU.match(key))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no screen is assumed
    import matplotlib.pyplot as plt

    return plt


def _axes(title: str, ylabel: str):
    """A figure with one set of axes, titled with `title` wrapped to fit its width."""
    fig, ax = _pyplot().subplots(figsize=(6, 4), dpi=100)
    ax.set_title(textwrap.fill(title, 70), fontsize=10)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _save(fig, path: Path, headroom: float = 0.0) -> Path:
    """Lay out and write the figure; `headroom` inches stay free at the top for a suptitle."""
    fig.tight_layout(rect=(0, 0, 1, 1 - headroom / fig.get_figheight()))
    fig.savefig(path)
    _pyplot().close(fig)
    return path


def _line(ax, points: Curve, **style) -> tuple[list[float], int | None]:
    """Plot the finite points of a curve; return their values and the first non-finite step."""
    finite = [(s, v) for s, v in points if math.isfinite(v)]
    ax.plot([s for s, _ in finite], [v for _, v in finite], **style)
    bad = next((s for s, v in points if not math.isfinite(v)), None)
    return [v for _, v in finite], bad


def _mark(ax, bad_steps: list[int | None]) -> None:
    """A dashed line where a value first stopped being finite: where a run diverged."""
    bad = [s for s in bad_steps if s is not None]
    if bad:
        ax.axvline(min(bad), color="tab:red", linestyle="--", linewidth=1,
                   label=f"not finite from step {min(bad)}")


def _scale_y(ax, values: Sequence[float]) -> None:
    """Log axis for positive values spanning decades; symlog when exact zeros sit among them."""
    positive = [v for v in values if v > 0]
    if not positive or max(positive) / min(positive) <= 100 or any(v < 0 for v in values):
        return
    if len(positive) == len(values):
        ax.set_yscale("log")
        # Explicit limits: near float64's end (a diverging run) autoscale and ticks overflow.
        top = min(max(positive) * 2, LOG_CEILING)
        bottom = max(min(positive) / 2, top / LOG_SPAN)
        ax.set_ylim(bottom, top)
        if top / bottom > 1e12:  # minor ticks over dozens of decades cost seconds, show nothing
            ax.yaxis.set_minor_locator(_pyplot().NullLocator())
    else:
        ax.set_yscale("symlog", linthresh=min(positive))  # a dead layer's gradient is exactly 0


def loss_curve(points: Curve, path: Path, title: str) -> Path:
    """train/loss against step, saved as a PNG at `path`."""
    fig, ax = _axes(title, LOSS_KEY)
    values, bad = _line(ax, points, color="tab:blue", linewidth=1.5)
    _mark(ax, [bad])
    if bad is not None:
        ax.legend(fontsize=8)
    _scale_y(ax, values)
    return _save(fig, path)


def _natural(key: str) -> list:
    """Sort key putting layer2 before layer10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]


def _styles(keys: list[str], names: list[str]) -> list[dict]:
    """Line styles for `keys`: matplotlib's colours with a legend entry each for a few lines;
    for many (a deep network), a colour running with depth and only the ends labelled."""
    if len(keys) <= MAX_LEGEND:
        return [{"label": name} for name in names]
    cmap = _pyplot().get_cmap("viridis")
    return [{"color": cmap(i / (len(keys) - 1)),
             "label": name if i in (0, len(keys) - 1) else None}
            for i, name in enumerate(names)]


def gradient_norms(curves: Mapping[str, Curve], path: Path, title: str) -> Path:
    """One line per parameter gradient (grad/<layer>.d<array>/norm) against step."""
    fig, ax = _axes(title, "gradient norm (Frobenius)")
    keys = sorted((k for k in curves if GRAD_NORM.match(k)), key=_natural)
    values, bad_steps = [], []
    for key, style in zip(keys, _styles(keys, [GRAD_NORM.match(k)["name"] for k in keys])):
        finite, bad = _line(ax, curves[key], linewidth=1.3, **style)
        values += finite
        bad_steps.append(bad)
    _mark(ax, bad_steps)
    ax.legend(fontsize=8)
    _scale_y(ax, values)
    return _save(fig, path)


def dead_relu(curves: Mapping[str, Curve], path: Path, title: str) -> Path:
    """Per layer, the fraction of ReLU outputs that are zero, against step."""
    fig, ax = _axes(title, "fraction of ReLU outputs at zero")
    keys = sorted((k for k in curves if DEAD_RELU.match(k)), key=_natural)
    for key, style in zip(keys, _styles(keys, [DEAD_RELU.match(k)["layer"] for k in keys])):
        _line(ax, curves[key], linewidth=1.5, **style)
    ax.set_ylim(-0.03, 1.03)  # a fraction: keep 0 and 1 in view so "all dead" is unmistakable
    ax.legend(fontsize=8)
    return _save(fig, path)


# ---- the shape diagram ----------------------------------------------------------------------

# Each kind of product: the letters of its (rows, inner, columns) and what the panel is called.
# Letters as in the shapes module: N samples, F inputs of a layer, W its width.
KINDS = {
    "forward": (("N", "F", "W"), "forward"),
    "dweights": (("F", "N", "W"), "weight gradient"),
    "dinputs": (("N", "W", "F"), "input gradient"),
}
_MATMUL = re.compile(r"^\(([\d, ]+)\) @ \(([\d, ]+)\) -> \(([\d, ]+)\)")
# rows of the result, the dimension that must match, columns of the result
COLOURS = {"rows": "tab:blue", "inner": "tab:red", "cols": "tab:green"}


@dataclass(frozen=True)
class Product:
    """One matrix product of the ledger: left (rows, inner) @ right (inner, cols) -> result."""

    layer: str
    kind: str  # forward, dweights or dinputs
    names: tuple[str, str, str]  # left, right, result, as the ledger calls them
    left: tuple[int, int]
    right: tuple[int, int]
    result: tuple[int, int]


def _dims(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in text.split(","))


def _names(entry: ShapeEntry, upstream: str) -> tuple[str, tuple[str, str, str]] | None:
    """The kind of a product entry and its operands' names; None for entries of no product."""
    if entry.direction == "forward":  # preactivation, or a linear output layer's output
        return "forward", ("inputs", "weights", entry.array)
    if entry.array == "dweights":
        return "dweights", ("inputs.T", upstream, "dweights")
    if entry.array == "dinputs":
        return "dinputs", (upstream, "weights.T", "dinputs")
    return None


def products(entries: Sequence[ShapeEntry]) -> list[Product]:
    """The matrix products of a shape ledger, in ledger order."""
    # The gradient reaching a Dense layer is drelu behind a ReLU, else dvalues itself.
    behind_relu = {e.layer for e in entries if e.array == "drelu"}
    found = []
    for entry in entries:
        match = _MATMUL.match(entry.product)
        named = _names(entry, "drelu" if entry.layer in behind_relu else "dvalues")
        if match and named:
            left, right, result = (_dims(g) for g in match.groups())
            found.append(Product(entry.layer, named[0], named[1], left, right, result))
    return found


def _side(n: int) -> float:
    """Drawn length of a dimension of size n: grows with log2 so 3 and 1000 both fit."""
    return 0.7 + 0.45 * math.log2(n)


def _matrix(ax, x: float, shape: tuple[int, int], letters: tuple[str, str],
            roles: tuple[str, str], name: str) -> float:
    """Draw a (rows, cols) box with its top-left corner at (x, 0); return its right edge."""
    from matplotlib.patches import Rectangle

    height, width = _side(shape[0]), _side(shape[1])
    ax.add_patch(Rectangle((x, -height), width, height, facecolor="0.95", edgecolor="0.6"))
    ax.plot([x, x], [0, -height], color=COLOURS[roles[0]], linewidth=4)  # rows: left edge
    ax.plot([x, x + width], [0, 0], color=COLOURS[roles[1]], linewidth=4)  # cols: top edge
    ax.text(x - 0.12, -height / 2, f"{letters[0]}={shape[0]}", rotation=90, ha="right",
            va="center", color=COLOURS[roles[0]], fontsize=9, fontweight="bold")
    ax.text(x + width / 2, 0.15, f"{letters[1]}={shape[1]}", ha="center", va="bottom",
            color=COLOURS[roles[1]], fontsize=9, fontweight="bold")
    ax.text(x + width / 2, -height - 0.2, name, ha="center", va="top", fontsize=9)
    return x + width


def _draw_product(ax, product: Product) -> tuple[float, float]:
    """Draw left @ right -> result in `ax`; return the drawing's right edge and its depth."""
    left_name, right_name, result_name = product.names
    (r, i, c), label = KINDS[product.kind]
    x = _matrix(ax, 0.6, product.left, (r, i), ("rows", "inner"), left_name)
    ax.text(x + 0.4, -0.6, "@", ha="center", va="center", fontsize=14)
    x = _matrix(ax, x + 1.6, product.right, (i, c), ("inner", "cols"), right_name)
    ax.text(x + 0.6, -0.6, "->", ha="center", va="center", fontsize=14)
    x = _matrix(ax, x + 1.8, product.result, (r, c), ("rows", "cols"), result_name)
    inner_ok = product.left[1] == product.right[0]
    verdict = "match" if inner_ok else "DO NOT MATCH"
    ax.set_title(f"{product.layer} {label}\n{i}: {product.left[1]} and {product.right[0]} "
                 f"{verdict}; {r} x {c} form the result", fontsize=9,
                 color="black" if inner_ok else COLOURS["inner"])
    return x, max(_side(n) for n in (*product.left, *product.right))


def shape_diagram(entries: Sequence[ShapeEntry], path: Path, title: str) -> Path:
    """Each layer's forward product and gradient products, one row per layer.

    Red edges are the inner dimension, which must match and disappears; blue and green
    edges are the outer dimensions, which become the result's rows and columns.
    """
    plt = _pyplot()
    found = products(entries)
    layers = list(dict.fromkeys(p.layer for p in found))
    note = ""
    if len(layers) > DIAGRAM_LAYERS:  # a deep stack repeats itself; the first and last show it
        kept = layers[:DIAGRAM_LAYERS - 2] + layers[-2:]
        note = (f"\n{layers[DIAGRAM_LAYERS - 2]} to {layers[-3]} left out (the same pattern); "
                "shapes.csv lists every array")
        layers, found = kept, [p for p in found if p.layer in kept]
    kinds = [k for k in KINDS if any(p.kind == k for p in found)]
    fig, axes = plt.subplots(len(layers), len(kinds), squeeze=False,
                             figsize=(4.8 * len(kinds), 2.9 * len(layers) + 0.8), dpi=100)
    for ax in axes.flat:
        ax.axis("off")  # panels with no product (layer1 needs no dinputs) stay blank
    extents = [_draw_product(axes[layers.index(p.layer)][kinds.index(p.kind)], p)
               for p in found]
    right, depth = max(x for x, _ in extents), max(d for _, d in extents)
    for ax in axes.flat:  # one scale for every panel, so sizes compare across layers
        ax.set_xlim(-0.1, right + 0.3)
        ax.set_ylim(-depth - 0.8, 0.8)  # room for the names below and the sizes above
        ax.set_aspect("equal")
    legend = "red: must match (the summed dimension); blue x green: the result"
    heading = f"{textwrap.fill(title, 120)}\n{legend}{note}"
    fig.suptitle(heading, fontsize=10)
    return _save(fig, path, headroom=0.2 * (heading.count("\n") + 1))


def run_figures(curves: Mapping[str, Curve], entries: Sequence[ShapeEntry], folder: Path,
                title: str) -> list[Path]:
    """Every picture of one run that its record allows, as PNG files in `folder`."""
    with warnings.catch_warnings():
        # A diverging run's values overflow inside matplotlib's log scales; the pictures
        # show the divergence, the warnings would only alarm.
        warnings.simplefilter("ignore", RuntimeWarning)
        return _draw_all(curves, entries, folder, title)


def _draw_all(curves, entries, folder: Path, title: str) -> list[Path]:
    drawn = []
    if curves.get(LOSS_KEY):
        drawn.append(loss_curve(curves[LOSS_KEY], folder / "loss_curve.png", title))
    if any(GRAD_NORM.match(k) for k in curves):
        drawn.append(gradient_norms(curves, folder / "gradient_norms.png", title))
    if any(DEAD_RELU.match(k) for k in curves):
        drawn.append(dead_relu(curves, folder / "dead_relu.png", title))
    if products(entries):
        drawn.append(shape_diagram(entries, folder / "shapes.png", title))
    return drawn
