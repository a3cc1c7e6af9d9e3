"""Datasets: builders, the train/validation split, standardisation and mini-batches.

Every random draw comes from a numpy Generator the caller passes in, never global state.
Shapes: N samples, F features; targets are (N,) class indices for classification, or
(N, T) values for regression onto T target columns.

The shipped datasets (iris, digits) come with scikit-learn and CSV files are read with
pandas; both are imported only inside the builders that need them, so importing this
module costs numpy alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """Data that cannot be used as given; the message names the file, column and row."""


@dataclass(frozen=True)
class Dataset:
    """What a run trains on: inputs (N, F), optional targets, a description for the record.

    `classes` names the classes when targets are class indices 0..K-1; it is None for
    unlabelled data and for regression targets.
    """

    name: str
    inputs: np.ndarray
    source: str
    targets: np.ndarray | None = None
    classes: tuple[str, ...] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.inputs.shape

    @property
    def labels(self) -> str | None:
        """'classes', 'values' or None: what kind of targets the dataset carries."""
        if self.targets is None:
            return None
        return "classes" if self.classes is not None else "values"

    @property
    def n_outputs(self) -> int | None:
        """Width a labelled objective needs: K classes, or T target columns."""
        if self.targets is None:
            return None
        return len(self.classes) if self.classes is not None else self.targets.shape[1]

    def rows(self, index) -> Dataset:
        """The same dataset restricted to `index` (a slice or an array of row numbers)."""
        targets = None if self.targets is None else self.targets[index]
        return replace(self, inputs=self.inputs[index], targets=targets)


# ---- builders --------------------------------------------------------------------------------

def gaussian(n_samples: int, n_features: int, *, rng: np.random.Generator, dtype) -> Dataset:
    """N x F draws from a standard normal: the founding experiment's data."""
    inputs = rng.standard_normal((n_samples, n_features)).astype(dtype, copy=False)  # (N, F)
    source = f"gaussian(N={n_samples}, F={n_features})"
    return Dataset(name="gaussian", inputs=inputs, source=source)


def spiral(n_samples: int, n_classes: int, *, rng: np.random.Generator, dtype) -> Dataset:
    """The book's spiral: K arms of points in the plane, one class per arm, N points in all.

    Each arm sweeps 4 radians while its radius grows to 1; Gaussian noise of 0.2 on
    the angle blurs neighbouring arms, so no straight line separates them.
    """
    per_class = np.full(n_classes, n_samples // n_classes)
    per_class[: n_samples % n_classes] += 1  # the first N mod K arms get one point more
    targets = np.repeat(np.arange(n_classes), per_class)  # (N,)
    # Radii start one step out from 0: a point at the origin would sit on every ReLU's kink.
    radius = np.concatenate([np.linspace(0.0, 1.0, n + 1)[1:] for n in per_class])  # (N,)
    angle = np.concatenate([np.linspace(4.0 * k, 4.0 * (k + 1), n) for k, n in
                            enumerate(per_class)])  # (N,)
    angle = angle + 0.2 * rng.standard_normal(n_samples)  # (N,)
    inputs = np.column_stack([radius * np.sin(angle * 2.5), radius * np.cos(angle * 2.5)])
    return Dataset(name="spiral", inputs=inputs.astype(dtype, copy=False),  # (N, 2)
                   source=f"spiral(N={n_samples}, K={n_classes})", targets=targets,
                   classes=tuple(f"arm{k}" for k in range(n_classes)))


def iris(*, dtype) -> Dataset:
    """Fisher's iris: 150 flowers x 4 measurements (cm), 3 species. Ships with scikit-learn."""
    from sklearn.datasets import load_iris

    bunch = load_iris()
    return Dataset(name="iris", inputs=bunch.data.astype(dtype),  # (150, 4)
                   source="sklearn.datasets.load_iris", targets=bunch.target.astype(np.int64),
                   classes=tuple(str(n) for n in bunch.target_names))


def digits(*, dtype) -> Dataset:
    """1797 handwritten digits as 8x8 images flattened to 64 grey levels 0..16; 10 classes."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return Dataset(name="digits", inputs=bunch.data.astype(dtype),  # (1797, 64)
                   source="sklearn.datasets.load_digits", targets=bunch.target.astype(np.int64),
                   classes=tuple(str(n) for n in bunch.target_names))


def csv(path: Path, features: Sequence[str] | None, target: str | None, *, dtype) -> Dataset:
    """A CSV file with a header row: feature columns, and optionally one target column.

    `features` None means every column but the target. A numeric target is a regression
    target (N, 1); a text target names classes, numbered in sorted order.
    """
    frame = _read_csv(Path(path))
    frame.columns = columns = [str(c) for c in frame.columns]
    wanted = [*([] if target is None else [target]), *(features or [])]
    missing = [name for name in wanted if name not in columns]
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r}; the columns are {columns}; "
                        "check dataset.features and dataset.target")
    if target is not None and target in (features or ()):
        raise DataError(f"{path}: column {target!r} is both the target and a feature; "
                        "drop it from dataset.features")
    if features is None:
        features = [c for c in columns if c != target]
    if not features:
        raise DataError(f"{path}: no feature columns left; set dataset.features")
    inputs = _numeric(frame, list(features), path).astype(dtype)  # (N, F)
    dataset = Dataset(name=Path(path).stem, inputs=inputs, source=f"csv:{Path(path).resolve()}")
    if target is None:
        return dataset
    column = frame[target]
    _no_missing(column.isna().to_numpy(), target, path)
    if column.dtype.kind in "iuf":
        return replace(dataset, targets=column.to_numpy(dtype=dtype).reshape(-1, 1))  # (N, 1)
    names, codes = np.unique(column.astype(str).to_numpy(), return_inverse=True)
    return replace(dataset, targets=codes.astype(np.int64), classes=tuple(names))


def _read_csv(path: Path):
    import pandas as pd

    if not path.is_file():
        raise DataError(f"no CSV file at {path}; set dataset.path to an existing file")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataError(f"{path} is not a readable CSV file: {error}") from error


def _numeric(frame, columns: list[str], path) -> np.ndarray:
    """The columns as one float array, naming the first bad cell when there is one."""
    import pandas as pd

    values = np.empty((len(frame), len(columns)))  # (N, F)
    for j, name in enumerate(columns):
        raw = frame[name]
        _no_missing(raw.isna().to_numpy(), name, path)
        parsed = pd.to_numeric(raw, errors="coerce")
        bad = np.flatnonzero(parsed.isna().to_numpy())
        if bad.size:
            row = int(bad[0])
            raise DataError(f"{path}: column {name!r}, row {row + 1}: {raw.iloc[row]!r} is not "
                            "a number; fix the file or leave the column out of dataset.features")
        values[:, j] = parsed.to_numpy(dtype=np.float64)
    return values


def _no_missing(missing: np.ndarray, column: str, path) -> None:
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise DataError(f"{path}: column {column!r}, row {row + 1} (counting data rows from 1) "
                        f"is empty, as are {int(missing.sum()) - 1} more; fill or drop them")


def as_classes(dataset: Dataset) -> Dataset:
    """Numeric targets read as class labels: each distinct value is a class, in sorted order."""
    if dataset.labels != "values" or dataset.targets.shape[1] != 1:
        return dataset
    values = dataset.targets[:, 0]  # (N, 1) -> (N,)
    fractional = np.flatnonzero(values != np.round(values))
    if fractional.size:
        row = int(fractional[0])
        raise DataError(f"{dataset.source}: target row {row + 1} is {float(values[row]):g}, "
                        "not a class label; classification needs whole numbers or text in the "
                        "target column")
    names, codes = np.unique(values, return_inverse=True)
    return replace(dataset, targets=codes.astype(np.int64),
                   classes=tuple(f"{v:g}" for v in names))


# ---- preparation -----------------------------------------------------------------------------

def split(dataset: Dataset, fraction: float, *, rng: np.random.Generator
          ) -> tuple[Dataset, Dataset | None]:
    """A shuffled train/validation split holding out `fraction` of the rows (at least one)."""
    if fraction <= 0:
        return dataset, None
    n_samples = dataset.shape[0]
    n_held = max(1, round(fraction * n_samples))
    if n_held >= n_samples:
        raise DataError(f"dataset.validation_fraction={fraction} leaves no rows to train on "
                        f"({n_samples} rows); use a smaller fraction")
    # Rows stay in shuffled order, so the first rows (which the gradient check uses) mix
    # the classes instead of holding the first class alone.
    order = rng.permutation(n_samples)  # (N,)
    return dataset.rows(order[n_held:]), dataset.rows(order[:n_held])


def standardize(train: Dataset, validation: Dataset | None) -> tuple[Dataset, Dataset | None]:
    """Features shifted to mean 0 and scaled to std 1, by statistics of the training rows only.

    Using the training rows alone keeps validation data from leaking into training. A
    feature that is constant in training is only shifted (its std is taken as 1).
    """
    mean = train.inputs.mean(axis=0, keepdims=True)  # (N, F) -> (1, F)
    std = train.inputs.std(axis=0, keepdims=True)  # (N, F) -> (1, F)
    std[std == 0] = 1.0

    def scaled(part: Dataset) -> Dataset:
        return replace(part, inputs=(part.inputs - mean) / std)  # (N, F) - (1, F) / (1, F)

    return scaled(train), None if validation is None else scaled(validation)


class Batches:
    """Mini-batches of a dataset, reshuffled by `rng` at the start of every pass.

    batch_size None (or at least N) means the whole dataset each step, in its own order,
    with no copy and no draw from `rng`. Otherwise each pass copies the rows once into
    shuffled order, and the batches are consecutive views of that copy; the last batch of a
    pass may be short.
    """

    def __init__(self, dataset: Dataset, batch_size: int | None, rng: np.random.Generator):
        self.dataset = dataset
        self.batch_size = batch_size
        self.rng = rng
        self._shuffled = dataset
        self._start = 0

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        return self

    def __next__(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(inputs (B, F), targets (B,) or (B, T) or None) for the next step."""
        n_samples = self.dataset.shape[0]
        if self.batch_size is None or self.batch_size >= n_samples:
            return self.dataset.inputs, self.dataset.targets
        if self._start == 0:
            self._shuffled = self.dataset.rows(self.rng.permutation(n_samples))
        stop = min(self._start + self.batch_size, n_samples)
        batch = self._shuffled.rows(slice(self._start, stop))
        self._start = 0 if stop == n_samples else stop
        return batch.inputs, batch.targets


# ---- by name ---------------------------------------------------------------------------------

# Each builder reads what it needs from `options`, the dataset group of the config.
BUILDERS = {
    "gaussian": lambda o, rng, dtype: gaussian(o.n_samples, o.n_features, rng=rng, dtype=dtype),
    "spiral": lambda o, rng, dtype: spiral(o.n_samples, o.n_classes, rng=rng, dtype=dtype),
    "iris": lambda o, rng, dtype: iris(dtype=dtype),
    "digits": lambda o, rng, dtype: digits(dtype=dtype),
    "csv": lambda o, rng, dtype: csv(o.path, o.features, o.target, dtype=dtype),
}


def load(options, needs: str | None, *, rng: np.random.Generator, dtype) -> Dataset:
    """The dataset `options.name` names, with its targets read the way the objective `needs`.

    needs "classes" turns whole-number targets into class labels; needs "values" refuses
    class labels, which have no numeric distance to regress onto.
    """
    dataset = BUILDERS[options.name](options, rng, dtype)
    if needs == "classes":
        return as_classes(dataset)
    if needs == "values" and dataset.labels == "classes":
        raise DataError(f"{dataset.source}: the target column holds text class labels, which "
                        "the mse objective cannot regress onto; use "
                        "objective=softmax_cross_entropy")
    return dataset
