"""The L-BFGS step on problems small enough to solve by hand: numpy only, no network."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from styled.engine.optimize import INITIAL_RADIUS, Budget, Lbfgs, ScaleState, optimise_scale

SIDE = 16


def quadratic(curvature: np.ndarray, centre: np.ndarray):
    """½ Σ a (x − c)² (summed in float64), whose minimum in [0, 1] is at c clipped to [0, 1]."""

    def loss_and_grads(image: np.ndarray):
        difference = image.reshape(-1).astype(np.float64) - centre
        return float(0.5 * np.sum(curvature * difference**2)), {}, (curvature * difference).astype(np.float32)

    return loss_and_grads


def test_pixels_pressed_against_black_or_white_do_not_hold_back_the_others():
    # A tenth of the pixels want to go far outside [0, 1] (a stylised image's saturated highlights
    # and shadows); the rest have targets inside, with curvatures over three orders of magnitude.
    rng = np.random.default_rng(0)
    count = SIDE * SIDE * 3
    curvature = 10.0 ** rng.uniform(-1.5, 1.5, count)
    centre = rng.uniform(0.05, 0.95, count)
    outside = rng.random(count) < 0.1
    centre[outside] = np.where(rng.random(outside.sum()) < 0.5, -50.0, 50.0)
    loss_and_grads = quadratic(curvature, centre)
    state = ScaleState(image=np.full((SIDE, SIDE, 3), 0.5, np.float32))
    optimise_scale(state, loss_and_grads, Lbfgs(10), budget=Budget(40),
                   project=lambda image: np.clip(image, 0.0, 1.0), on_iteration=lambda *_: False)
    least = loss_and_grads(np.clip(centre, 0.0, 1.0))[0]
    start = state.history[0]["total"]
    assert (state.best_loss - least) / (start - least) < 1e-3, "within a thousandth of the way down"


def test_a_pixel_at_0_or_1_that_the_step_would_push_out_stays_and_the_rest_move():
    rng = np.random.default_rng(1)
    x = rng.choice([0.0, 0.3, 1.0], 300).astype(np.float32)
    grad = rng.normal(0.0, 100.0, 300).astype(np.float32)
    grad[0], x[0] = -1000.0, np.float32(1.0)  # the largest component points out of the range
    step = Lbfgs(10).step(x, 1.0, grad) - x
    pushed_out = ((x == 0.0) & (grad > 0)) | ((x == 1.0) & (grad < 0))
    assert np.all(step[pushed_out] == 0.0)
    free = ~pushed_out
    assert np.all(np.sign(step[free]) == -np.sign(grad[free])), "the first step goes down the gradient"
    assert np.isclose(np.abs(step).max(), INITIAL_RADIUS), "sized by the components that can move"


@settings(max_examples=50, deadline=None)
@given(arrays(np.float32, 12, elements=st.sampled_from([0.0, 0.25, 1.0])),
       st.lists(arrays(np.float32, 12, elements=st.floats(-10, 10, width=32)), min_size=2, max_size=6))
def test_after_any_history_no_step_leaves_the_range_or_the_radius(x, grads):
    optimizer = Lbfgs(5)
    point = x
    for grad in grads:
        radius = optimizer.radius
        raw = optimizer.step(point, float(np.sum(grad * point)), grad)
        start = optimizer._accepted.x  # a rejected step goes back to the accepted point
        assert np.abs(raw - start).max() <= max(radius, optimizer.radius) + 1e-6
        assert np.all(raw[start <= 0.0] >= 0.0) and np.all(raw[start >= 1.0] <= 1.0), \
            "no component points out of [0, 1] from a pixel already at its end"
        point = np.clip(raw, 0.0, 1.0)
