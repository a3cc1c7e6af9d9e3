"""The same training step written with PyTorch's autograd, for comparison only.

torch is an optional extra (`pip install -e '.[bench]'`); without it every function here
answers None and the benchmark leaves the PyTorch columns empty.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable

import numpy as np


def version() -> str | None:
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    return f"{torch.__version__}, timed with as many threads as BLAS has"


def make_step(inputs: np.ndarray, weights: list[np.ndarray], biases: list[np.ndarray] | None,
              *, lr: float, threads: int) -> Callable[[], float] | None:
    """One PyTorch training step as a function, or None when torch is not installed.

    The maths is the runner's: Dense then ReLU per layer, loss = mean of the last output,
    gradients by autograd, then parameter -= lr * gradient.
    """
    if importlib.util.find_spec("torch") is None:
        return None
    # Idle OpenMP threads otherwise spin on the cores the numpy step runs on next.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(threads)
    return _make_step(torch, inputs, weights, biases, lr)


def _make_step(torch, inputs, weights, biases, lr) -> Callable[[], float]:
    x = torch.from_numpy(np.ascontiguousarray(inputs))  # (N, F)
    ws = [torch.from_numpy(w.copy()).requires_grad_() for w in weights]  # (F, W) each
    bs = [torch.from_numpy(b.copy()).requires_grad_() for b in biases] if biases else None
    parameters = ws + (bs or [])

    def step() -> float:
        values = x
        for i, w in enumerate(ws):
            values = values @ w  # (N, F) @ (F, W) -> (N, W)
            if bs is not None:
                values = values + bs[i]  # (N, W) + (1, W) -> (N, W)
            values = torch.relu(values)
        loss = values.mean()
        for p in parameters:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in parameters:
                p.add_(p.grad, alpha=-lr)
        return float(loss.detach())

    return step
