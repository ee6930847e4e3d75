"""The built-in temporal plugin: Ruder et al.'s term (whole and tiled) and its starting image."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from styled.engine.job import Job
from styled.engine.spec import build_job_spec
from styled.engine.types import ScaleJob, TemporalTargets, Window
from styled.io.images import Image
from styled.plugins.builtin import temporal

SHAPE = (12, 16)


def scale_job(targets: TemporalTargets | None, **settings) -> ScaleJob:
    rng = np.random.default_rng(0)
    spec = build_job_spec({"content": "frame.png", "style": "style.png", "size": 16, "scales": 1, **settings})
    content = Image(rng.uniform(size=(*SHAPE, 3)).astype(np.float32), None)
    extras = {} if targets is None else {temporal.EXTRA: targets}
    job = Job(spec=spec, content=content, styles=(content,), extras=extras)
    return ScaleJob(job, None, (), (1.0,), 0, 1, extractor=None)


def targets() -> TemporalTargets:
    rng = np.random.default_rng(1)
    warped = tuple(rng.uniform(size=(*SHAPE, 3)).astype(np.float32) for _ in range(2))
    weights = (np.zeros(SHAPE, np.float32), np.zeros(SHAPE, np.float32))
    weights[0][:, :8] = 1.0
    weights[1][:, 8:12] = 1.0
    return TemporalTargets(warped, weights)


def test_the_term_is_the_weighted_mean_squared_difference_to_each_warped_frame():
    goal = targets()
    [term] = temporal.register_losses(job=scale_job(goal))
    image = np.random.default_rng(2).uniform(size=(1, *SHAPE, 3)).astype(np.float32)
    expected = sum((w[..., None] * np.square(image[0] - x)).sum() for x, w in zip(goal.warped, goal.weights))
    expected /= image.size
    assert term.name == "temporal" and term.weight == 200.0
    np.testing.assert_allclose(float(term.fn(tf.constant(image), {})), expected, rtol=1e-5)


def test_tiles_add_up_to_the_whole_term():
    [term] = temporal.register_losses(job=scale_job(targets()))
    image = tf.constant(np.random.default_rng(3).uniform(size=(1, *SHAPE, 3)).astype(np.float32))
    whole = float(term.fn(image, {}))
    sums = None
    for window in Window.grid(SHAPE, 8, 4):
        parts = term.tiling.partial(window.crop(image), {}, window.local(), term.tiling.targets(window))
        sums = parts if sums is None else tuple(a + b for a, b in zip(sums, parts))
    np.testing.assert_allclose(float(term.tiling.combine(sums)), whole, rtol=1e-5)


def test_a_frame_starts_from_the_warped_result_where_the_flow_is_reliable():
    goal = targets()
    given = np.full((1, *SHAPE, 3), 0.5, np.float32)
    start = temporal.initial_image(job=scale_job(goal), image=tf.constant(given))[0]
    np.testing.assert_allclose(start[:, :8], goal.warped[0][:, :8], atol=1e-6)
    np.testing.assert_allclose(start[:, 8:], 0.5)


def test_nothing_happens_to_a_still_or_with_the_weight_at_zero():
    assert temporal.register_losses(job=scale_job(None)) == []
    assert temporal.register_losses(job=scale_job(targets(), temporal_weight=0)) == []
    assert temporal.initial_image(job=scale_job(None), image=tf.zeros((1, *SHAPE, 3))) is None
