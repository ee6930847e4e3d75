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
#: The trust region: no step moves a pixel further than the radius (pixels are in [0, 1]). It
#: starts here, doubles after each accepted step that it cut short, and shrinks to a quarter of
#: the step after a step that raised the loss, which is then taken back.
INITIAL_RADIUS = 0.05
MAX_RADIUS = 1.0
MIN_RADIUS = 1e-4
RADIUS_GROWTH = 2.0
RADIUS_SHRINK = 0.25
#: A step may raise the loss by this fraction and still be kept (float noise in big sums).
ACCEPT_TOLERANCE = 1e-6
#: A loss this many times the best seen means the quadratic model broke down: restart from the best.
DIVERGENCE_FACTOR = 4.0
ADAM_BETAS = (0.9, 0.999)
ADAM_EPSILON = 1e-8


@dataclass
class _Point:
    x: np.ndarray
    loss: float
    grad: np.ndarray


class Lbfgs:
    """L-BFGS with one loss evaluation per iteration and an adaptive trust region instead of a
    line search.

    The direction is the scaled two-loop recursion (Nocedal & Wright, Numerical Optimization,
    algorithm 7.4) with H₀ = sᵀy / yᵀy, as in torch.optim.LBFGS, which jcjohnson/neural-style uses
    without a line search. The step length departs from both: a line search costs evaluations, and
    a unit step (torch) or a fixed cap on the pixel change (styled before 0.2) either jumps across
    the image range or crawls. Here no pixel moves further than a radius that grows while steps
    succeed and shrinks when one raises the loss; such a step is taken back (its evaluation still
    adds a curvature pair), so each iteration still costs one VGG pass.

    The image stays in [0, 1] (each step is projected there), so where the direction points out of
    the range from a pixel already at 0 or 1, that pixel cannot move: its component is dropped
    before the step is sized. Otherwise such components, often the largest (a thousand times the
    others was measured), set the step for every pixel, and a single-scale 256 px render stalled at
    a loss of 50 where it reaches 1.1 (docs/performance.md).
    """

    def __init__(self, history: int, radius: float = INITIAL_RADIUS):
        self._pairs: deque[tuple[np.ndarray, np.ndarray, float]] = deque(maxlen=history)
        self._accepted: _Point | None = None
        self.radius = radius
        self._clipped = False
        self._step_size = 0.0

    def reset(self) -> None:
        """Forget the curvature and the radius (after the loss ran away)."""
        self.start_scale()
        self.radius = INITIAL_RADIUS

    def start_scale(self, history: int | None = None) -> None:
        """A new image size: the curvature pairs no longer apply, but the radius, a step length in
        pixel units, carries over, so a finer scale does not crawl through its first steps.
        ``history`` changes how many pairs are kept (fewer at print sizes, to fit memory)."""
        self._pairs = deque(maxlen=history or self._pairs.maxlen)
        self._accepted = None

    def step(self, x: np.ndarray, loss: float, grad: np.ndarray) -> np.ndarray:
        here = self._judge(_Point(x, loss, grad))
        direction = self._direction(here.grad)
        direction[_pushed_out(here.x, direction)] = 0.0
        largest = float(np.abs(direction).max())
        self._clipped = largest > self.radius
        if self._clipped:
            direction *= self.radius / largest
        self._step_size = min(largest, self.radius)
        return here.x + direction

    def _judge(self, point: _Point) -> _Point:
        """Accept the new point (growing the radius) or take the step back (shrinking it)."""
        previous = self._accepted
        if previous is not None:
            self._remember(previous, point)
            if point.loss > previous.loss + ACCEPT_TOLERANCE * abs(previous.loss):
                self.radius = max(MIN_RADIUS, self._step_size * RADIUS_SHRINK)
                return previous
            if self._clipped:
                self.radius = min(MAX_RADIUS, self.radius * RADIUS_GROWTH)
        self._accepted = point
        return point

    def _remember(self, before: _Point, after: _Point) -> None:
        s, y = after.x - before.x, after.grad - before.grad
        ys = float(np.dot(y, s))
        if ys > CURVATURE_EPSILON * float(np.dot(y, y)):
            self._pairs.append((s, y, 1.0 / ys))

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


def _pushed_out(x: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Where ``direction`` points out of [0, 1] from a pixel already at 0 or 1 (built in place: at
    print sizes each boolean temporary is tens of megabytes)."""
    out = x <= 0.0
    out &= direction < 0
    high = x >= 1.0
    high &= direction > 0
    out |= high
    return out


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

    def start_scale(self) -> None:
        self.reset()

    def step(self, x: np.ndarray, loss: float, grad: np.ndarray) -> np.ndarray:
        """x - lr·m̂/(√v̂ + ε), updated in place through one scratch array that becomes the new
        point: at print sizes every image-sized temporary is hundreds of megabytes."""
        beta1, beta2 = ADAM_BETAS
        if self._m is None:
            self._m, self._v = np.zeros_like(grad), np.zeros_like(grad)
        self._t += 1
        m, v = self._m, self._v
        scratch = np.multiply(grad, np.float32(1 - beta1))
        m *= np.float32(beta1)
        m += scratch
        np.multiply(grad, grad, out=scratch)
        scratch *= np.float32(1 - beta2)
        v *= np.float32(beta2)
        v += scratch
        np.sqrt(v, out=scratch)
        scratch *= np.float32(1 / math.sqrt(1 - beta2**self._t))  # √v̂
        scratch += np.float32(ADAM_EPSILON)
        np.divide(m, scratch, out=scratch)
        scratch *= np.float32(self.learning_rate / (1 - beta1**self._t))
        return np.subtract(x, scratch, out=scratch)


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

    def record(self, image: np.ndarray, total: float, terms: dict[str, float], seconds: float) -> None:
        """Log this iteration's losses, with the render's seconds when it was evaluated, and keep the
        image if it is the best so far."""
        self.history.append({"iteration": self.iteration, "seconds": round(seconds, 3), "total": total, **terms})
        if total < self.best_loss:
            self.best_loss, self.best_image = total, image


LossAndGrads = Callable[[np.ndarray], tuple[float, dict[str, float], np.ndarray]]
Project = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Budget:
    """How long one scale may run: ``iterations`` loss evaluations, until ``deadline`` on
    time.monotonic(), or, with ``done`` given, until ``done(history)`` says it has converged."""

    iterations: int
    deadline: float = math.inf
    done: Callable[[list[dict[str, float]]], bool] | None = None


def optimise_scale(
    state: ScaleState,
    loss_and_grads: LossAndGrads,
    optimizer: Lbfgs | Adam,
    *,
    budget: Budget,
    project: Project,
    on_iteration: Callable[[ScaleState, float, dict[str, float]], bool],
    clock: Callable[[], float] = time.monotonic,
) -> ScaleState:
    """Run loss evaluations until the ``budget`` is spent.

    Each iteration evaluates the loss once and, unless it is the last, takes a step. The answer is
    the best image ever evaluated, so no evaluation is spent after the loop. ``on_iteration`` sees
    every iteration and returns True to stop early (a shutdown request). ``clock`` stamps each
    iteration in the history (the render's seconds so far).
    """
    shape = state.image.shape
    x = state.image.reshape(-1)
    iterations = budget.iterations
    while state.iteration < iterations and time.monotonic() < budget.deadline:
        total, terms, grad = loss_and_grads(x.reshape(shape))
        if not math.isfinite(total):
            raise FloatingPointError(f"the loss became {total} at iteration {state.iteration}")
        state.record(x.reshape(shape), total, terms, clock())
        state.iteration += 1
        if state.iteration < iterations:
            x = _next(state, optimizer, project, x, total, grad)
        del grad  # not held through the next evaluation (L-BFGS keeps what it needs)
        state.image = x.reshape(shape)
        if on_iteration(state, total, terms) or (budget.done is not None and budget.done(state.history)):
            break
    if state.best_image is None:  # zero iterations: the initial image is the answer
        state.best_image = state.image
    return state


def _next(state: ScaleState, optimizer: Lbfgs | Adam, project: Project, x: np.ndarray, total: float,
          grad: np.ndarray) -> np.ndarray:
    """The optimiser's step, projected; a restart from the best image if the loss ran away."""
    if total > DIVERGENCE_FACTOR * state.best_loss:
        optimizer.reset()
        return state.best_image.reshape(-1)
    return project(optimizer.step(x, total, grad.reshape(-1)).reshape(state.image.shape)).reshape(-1)
