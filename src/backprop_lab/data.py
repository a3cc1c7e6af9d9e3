"""Dataset builders. Each takes the run's numpy Generator, never global random state."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Dataset:
    """What a run trains on: inputs (N, F) and a short description for the record."""

    name: str
    inputs: np.ndarray
    source: str

    @property
    def shape(self) -> tuple[int, int]:
        return self.inputs.shape


def gaussian(n_samples: int, n_features: int, *, rng: np.random.Generator, dtype) -> Dataset:
    """N x F draws from a standard normal: the founding experiment's data."""
    inputs = rng.standard_normal((n_samples, n_features)).astype(dtype, copy=False)  # (N, F)
    source = f"gaussian(N={n_samples}, F={n_features})"
    return Dataset(name="gaussian", inputs=inputs, source=source)


BUILDERS = {"gaussian": gaussian}
