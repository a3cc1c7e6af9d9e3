"""Optimisers: the only code that changes a network's parameters."""

from __future__ import annotations

import numpy as np

from .network import Network


class SGD:
    """Plain stochastic gradient descent: parameter -= lr * gradient, in place."""

    name = "sgd"

    def __init__(self, lr: float):
        self.lr = lr
        self._scratch: dict[str, np.ndarray] = {}

    def step(self, network: Network) -> None:
        for name, parameter, gradient in network.parameters():
            update = self._scratch.get(name)
            if update is None:
                update = self._scratch[name] = np.empty_like(parameter)
            np.multiply(gradient, -self.lr, out=update)  # same shape as the parameter
            parameter += update

    def update_ratio(self, parameter: np.ndarray, gradient: np.ndarray) -> float:
        """||lr * gradient|| / ||parameter||: how far one step moves the parameter, relatively."""
        weight_norm = float(np.linalg.norm(parameter))
        if weight_norm == 0.0:
            return float("inf") if np.any(gradient) else 0.0
        return self.lr * float(np.linalg.norm(gradient)) / weight_norm
