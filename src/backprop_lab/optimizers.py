"""Optimisers: the only code that changes a network's parameters.

Each optimiser turns a parameter's gradient into an update that `step` adds to the
parameter in place. The learning rate decays with the number of steps taken t as
lr_t = lr / (1 + decay * t); decay 0 keeps it constant.
"""

from __future__ import annotations

import numpy as np

from .network import Network


class Optimizer:
    """What every optimiser shares: the decayed learning rate, state per parameter, the step."""

    name = ""
    slot_names: tuple[str, ...] = ()  # state arrays kept per parameter, beside "update"

    def __init__(self, lr: float, decay: float = 0.0):
        self.lr = lr
        self.decay = decay
        self.iterations = 0  # steps taken so far: t in the formulas
        self._state: dict[str, dict[str, np.ndarray]] = {}
        self._trial: dict[str, dict[str, np.ndarray]] = {}  # update_ratio's copies of _state

    @property
    def current_lr(self) -> float:
        """The learning rate the next step uses, after decay."""
        return self.lr / (1.0 + self.decay * self.iterations)

    def step(self, network: Network) -> None:
        """Move every parameter of `network` by its update, then count the step."""
        for name, parameter, gradient in network.parameters():
            parameter += self._update(self._slots(name, parameter), gradient)
        self.iterations += 1

    def update_ratio(self, name: str, parameter: np.ndarray, gradient: np.ndarray) -> float:
        """||update|| / ||parameter|| for the step about to be taken, without taking it.

        The step is tried on a copy of the state, in buffers kept from one call to the next.
        """
        slots = self._slots(name, parameter)
        trial = self._trial.get(name)
        if trial is None:
            trial = self._trial[name] = {k: np.empty_like(v) for k, v in slots.items()}
        for key, value in slots.items():
            np.copyto(trial[key], value)
        update_norm = float(np.linalg.norm(self._update(trial, gradient)))
        weight_norm = float(np.linalg.norm(parameter))
        if weight_norm == 0.0:
            return float("inf") if update_norm > 0 else 0.0
        return update_norm / weight_norm

    def _slots(self, name: str, parameter: np.ndarray) -> dict[str, np.ndarray]:
        """The state arrays kept for one parameter, created as zeros on first use."""
        slots = self._state.get(name)
        if slots is None:
            slots = self._state[name] = {
                key: np.zeros_like(parameter) for key in ("update", *self.slot_names)
            }
        return slots

    def _update(self, slots: dict[str, np.ndarray], gradient: np.ndarray) -> np.ndarray:
        """Advance `slots` by one step for `gradient`; return the update (slots['update'])."""
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent, with optional momentum.

    Without momentum: update = -lr_t * gradient. With momentum m, a velocity remembers past
    updates: velocity = m * velocity - lr_t * gradient, and the update is the velocity.
    """

    name = "sgd"

    def __init__(self, lr: float, momentum: float = 0.0, decay: float = 0.0):
        super().__init__(lr, decay)
        self.momentum = momentum
        self.slot_names = ("velocity",) if momentum else ()

    def _update(self, slots, gradient):
        update = slots["update"]
        np.multiply(gradient, -self.current_lr, out=update)  # same shape as the parameter
        if self.momentum:
            velocity = slots["velocity"]
            velocity *= self.momentum
            velocity += update
            np.copyto(update, velocity)
        return update


class Adam(Optimizer):
    """Adam: steps scaled per entry by running averages of the gradient and its square.

    m = b1 m + (1 - b1) g and v = b2 v + (1 - b2) g^2, both corrected for starting at zero
    by dividing by (1 - b^(t+1)); update = -lr_t * m_hat / (sqrt(v_hat) + epsilon).
    """

    name = "adam"
    slot_names = ("mean", "square")

    def __init__(self, lr: float, beta1: float = 0.9, beta2: float = 0.999,
                 epsilon: float = 1e-7, decay: float = 0.0):
        super().__init__(lr, decay)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon

    def _update(self, slots, gradient):
        mean, square, update = slots["mean"], slots["square"], slots["update"]
        mean *= self.beta1
        mean += (1.0 - self.beta1) * gradient
        square *= self.beta2
        square += (1.0 - self.beta2) * gradient * gradient
        t = self.iterations + 1
        mean_hat_scale = 1.0 / (1.0 - self.beta1**t)
        square_hat_scale = 1.0 / (1.0 - self.beta2**t)
        np.multiply(square, square_hat_scale, out=update)
        np.sqrt(update, out=update)
        update += self.epsilon
        np.divide(mean, update, out=update)
        update *= -self.current_lr * mean_hat_scale
        return update


OPTIMIZERS = {cls.name: cls for cls in (SGD, Adam)}


def make_optimizer(name: str, **options) -> Optimizer:
    """Build the optimiser registered under `name` with its keyword options."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[name](**options)
