"""Optimisers (L-BFGS, Adam) and the per-scale loop: best-image tracking, budgets, progress.

The optimisers work on flat float32 numpy vectors: the VGG pass dominates every iteration, and
keeping the bookkeeping out of TensorFlow keeps it simple and cheap (benchmarks/speed.py
prints the ratio of an iteration to a bare VGG forward and backward pass).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

#: Curvature pairs with yᵀs ≤ ε·yᵀy are skipped: they would make the inverse Hessian blow up.
#: Relative, not absolute as in torch.optim.LBFGS, because our losses are means (small numbers).
CURVATURE_EPSILON = 1e-10
#: Without curvature information, a step moves no pixel further than this (pixels are in [0, 1]).
FIRST_STEP_PIXELS = 0.01
#: A trust region for the quasi-Newton step: early on, with few pairs, the loss looks almost
#: linear and H₀ = sᵀy/yᵀy proposes steps many times the image's range.
MAX_STEP_PIXELS = 0.1
#: A loss this many times the best seen means the quadratic model broke down: restart from the best.
DIVERGENCE_FACTOR = 4.0
ADAM_BETAS = (0.9, 0.999)
ADAM_EPSILON = 1e-8


class Lbfgs:
    """L-BFGS with a unit step and no line search, one loss evaluation per iteration.

    As torch.optim.LBFGS without line search, which jcjohnson/neural-style uses, with the scaled
    two-loop recursion (Nocedal & Wright, Numerical Optimization, algorithm 7.4) and H₀ = sᵀy / yᵀy.
    Departs from torch in the steps taken without curvature pairs (the first, and any after a
    reset): torch scales them by min(1, 1/|g|₁), which depends on how the loss is scaled and, for
    our mean-normalised losses, gives steps lost in float noise or steps that jump across the
    image range. We scale them so that no pixel moves by more than FIRST_STEP_PIXELS, and cap
    every later step at MAX_STEP_PIXELS.
    """

    def __init__(self, history: int):
        self._pairs: deque[tuple[np.ndarray, np.ndarray, float]] = deque(maxlen=history)
        self._previous: tuple[np.ndarray, np.ndarray] | None = None

    def reset(self) -> None:
        self._pairs.clear()
        self._previous = None

    def step(self, x: np.ndarray, loss: float, grad: np.ndarray) -> np.ndarray:
        self._remember(x, grad)
        direction = self._direction(grad)
        limit = MAX_STEP_PIXELS if self._pairs else FIRST_STEP_PIXELS
        largest = float(np.abs(direction).max())
        if largest > limit:
            direction *= limit / largest
        return x + direction

    def _remember(self, x: np.ndarray, grad: np.ndarray) -> None:
        if self._previous is not None:
            s, y = x - self._previous[0], grad - self._previous[1]
            ys = float(np.dot(y, s))
            if ys > CURVATURE_EPSILON * float(np.dot(y, y)):
                self._pairs.append((s, y, 1.0 / ys))
        self._previous = (x, grad)

    def _direction(self, grad: np.ndarray) -> np.ndarray:
        # In-place updates through one scratch buffer: at 512 px every temporary is a fresh
        # 2.4 MB allocation, and those page faults cost more than the arithmetic.
        q = np.negative(grad)
        scratch = np.empty_like(q)
        alphas = []
        for s, y, rho in reversed(self._pairs):
            alpha = rho * float(np.dot(s, q))
            _axpy(-alpha, y, q, scratch)
            alphas.append(alpha)
        if self._pairs:
            s, y, rho = self._pairs[-1]
            q *= 1.0 / (rho * float(np.dot(y, y)))
        for (s, y, rho), alpha in zip(self._pairs, reversed(alphas)):
            beta = rho * float(np.dot(y, q))
            _axpy(alpha - beta, s, q, scratch)
        return q


def _axpy(a: float, x: np.ndarray, y: np.ndarray, scratch: np.ndarray) -> None:
    """y += a·x without allocating."""
    np.multiply(x, np.float32(a), out=scratch)
    y += scratch


class Adam:
    """Adam (Kingma & Ba 2015), the optimiser of the TensorFlow tutorial and of crowsonkb."""

    def __init__(self, learning_rate: float):
        self.learning_rate = learning_rate
        self.reset()

    def reset(self) -> None:
        self._m: np.ndarray | None = None
        self._v: np.ndarray | None = None
        self._t = 0

    def step(self, x: np.ndarray, loss: float, grad: np.ndarray) -> np.ndarray:
        beta1, beta2 = ADAM_BETAS
        if self._m is None:
            self._m, self._v = np.zeros_like(grad), np.zeros_like(grad)
        self._t += 1
        self._m = beta1 * self._m + (1 - beta1) * grad
        self._v = beta2 * self._v + (1 - beta2) * grad * grad
        m_hat = self._m / (1 - beta1**self._t)
        v_hat = self._v / (1 - beta2**self._t)
        return x - self.learning_rate * m_hat / (np.sqrt(v_hat) + ADAM_EPSILON)


OPTIMIZERS: dict[str, Callable[..., Lbfgs | Adam]] = {
    "lbfgs": lambda spec: Lbfgs(spec.lbfgs_history),
    "adam": lambda spec: Adam(spec.learning_rate),
}


@dataclass
class ScaleState:
    """Where the optimisation of one scale stands; enough to resume it."""

    image: np.ndarray  # (H, W, 3) float32
    iteration: int = 0
    best_image: np.ndarray | None = None
    best_loss: float = math.inf
    history: list[dict[str, float]] = field(default_factory=list)

    def record(self, image: np.ndarray, total: float, terms: dict[str, float]) -> None:
        """Log this iteration's losses and keep the image if it is the best so far."""
        self.history.append({"iteration": self.iteration, "total": total, **terms})
        if total < self.best_loss:
            self.best_loss, self.best_image = total, image


LossAndGrads = Callable[[np.ndarray], tuple[float, dict[str, float], np.ndarray]]
Project = Callable[[np.ndarray], np.ndarray]


def optimise_scale(
    state: ScaleState,
    loss_and_grads: LossAndGrads,
    optimizer: Lbfgs | Adam,
    *,
    iterations: int,
    deadline: float,
    project: Project,
    on_iteration: Callable[[ScaleState, float, dict[str, float]], bool],
) -> ScaleState:
    """Run up to ``iterations`` steps (or until ``deadline`` on time.monotonic()).

    ``on_iteration`` sees every step and returns True to stop early (a shutdown request).
    The last evaluation counts too: the final image of a scale is the best one ever evaluated.
    """
    shape = state.image.shape
    x = state.image.reshape(-1)
    while state.iteration < iterations and time.monotonic() < deadline:
        total, terms, grad = loss_and_grads(x.reshape(shape))
        if not math.isfinite(total):
            raise FloatingPointError(f"the loss became {total} at iteration {state.iteration}")
        state.record(x.reshape(shape), total, terms)
        if total > DIVERGENCE_FACTOR * state.best_loss:
            optimizer.reset()
            x = state.best_image.reshape(-1)
        else:
            x = project(optimizer.step(x, total, grad.reshape(-1)).reshape(shape)).reshape(-1)
        state.iteration += 1
        state.image = x.reshape(shape)
        if on_iteration(state, total, terms):
            break
    if state.iteration and (state.iteration >= iterations or time.monotonic() >= deadline):
        _evaluate_last(state, loss_and_grads)
    if state.best_image is None:  # zero iterations: the initial image is the answer
        state.best_image = state.image
    return state


def _evaluate_last(state: ScaleState, loss_and_grads: LossAndGrads) -> None:
    if state.best_image is not None and state.image is state.best_image:
        return
    total, terms, _ = loss_and_grads(state.image)
    if total < state.best_loss:
        state.best_loss, state.best_image = total, state.image
