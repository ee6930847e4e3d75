"""long_range: the shifted Gram statistic, how shifts follow the scales, texture synthesis, and that
the term keeps a regular texture's rows aligned where plain Gram matching does not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image as PILImage

from styled import cli, render
from styled.engine.job import load_job, relative_to
from styled.engine.losses import gram
from styled.engine.spec import build_job_spec
from styled.plugins import make_plugin_manager
from styled.plugins.builtin import long_range

#: Tiny textures from noise: Adam with a large step converges steadily in a few dozen iterations.
ADAM_RATE = 0.05
ADAM = ["--set", "optimizer=adam", "--set", f"learning_rate={ADAM_RATE}"]


def test_shifted_gram_pairs_each_feature_with_the_one_a_shift_away():
    features = np.random.default_rng(0).uniform(size=(1, 5, 7, 3)).astype(np.float32)
    shift = 2
    along_x = long_range.shifted_gram(tf.constant(features), shift, long_range.X_AXIS).numpy()
    left, right = features[0, :, :-shift].reshape(-1, 3), features[0, :, shift:].reshape(-1, 3)
    np.testing.assert_allclose(along_x, left.T @ right / left.size, rtol=1e-5)
    along_y = long_range.shifted_gram(tf.constant(features), shift, long_range.Y_AXIS).numpy()
    top, bottom = features[0, :-shift].reshape(-1, 3), features[0, shift:].reshape(-1, 3)
    np.testing.assert_allclose(along_y, top.T @ bottom / top.size, rtol=1e-5)


@pytest.mark.parametrize("axis", [long_range.X_AXIS, long_range.Y_AXIS])
def test_the_tiled_sums_over_one_window_give_the_shifted_gram(axis):
    from styled.engine.types import Window

    features = tf.constant(np.random.default_rng(5).normal(size=(1, 7, 9, 4)).astype(np.float32))
    product, count = long_range.shifted_parts(features, 3, axis, Window.whole((7, 9)), 1)
    np.testing.assert_allclose((product / count).numpy(), long_range.shifted_gram(features, 3, axis).numpy(), rtol=1e-5)


def test_cross_gram_of_a_map_with_itself_is_the_gram_matrix():
    features = tf.random.uniform((1, 6, 4, 8), seed=1)
    np.testing.assert_allclose(long_range.cross_gram(features, features).numpy(), gram(features).numpy(), rtol=1e-5)


def test_shifts_shrink_with_the_coarser_scales_and_too_long_ones_are_skipped():
    layers = {"relu3_1": [4, 16], "relu4_1": [8]}
    final = long_range.plan(layers, (256, 256), [(256, 256)], 256, 256)
    assert final == {"relu3_1": [(4, 2), (4, 1), (16, 2), (16, 1)], "relu4_1": [(8, 2), (8, 1)]}
    coarse = long_range.plan(layers, (128, 128), [(128, 128)], 128, 256)
    assert coarse["relu3_1"] == [(2, 2), (2, 1), (8, 2), (8, 1)]  # halved: the same fraction of the image
    assert coarse["relu4_1"] == [(4, 2), (4, 1)]  # relu4_1 is 16 wide at 128 px: 4 still fits
    small = long_range.plan(layers, (64, 128), [(64, 64)], 64, 64)
    assert small == {"relu3_1": [(4, 2), (4, 1)]}  # relu3_1 is 16 x 32 and the style's 16 x 16: 16 is too long


def test_feature_lengths_follow_vgg_pooling():
    assert [long_range.feature_length(100, layer) for layer in ("relu1_1", "relu2_1", "relu3_1", "relu5_1")] == [
        100, 50, 25, 7]


# --- texture synthesis --------------------------------------------------------------------------


@pytest.mark.slow
def test_texture_synthesis_from_the_command_line_starts_from_noise(tmp_path):
    source = tmp_path / "stripes.png"
    PILImage.fromarray((stripes(48, 8) * 255).astype(np.uint8)).save(source)
    out = tmp_path / "texture.png"
    code = cli.main(["render", "--texture", str(source), "-o", str(out), "--size", "48", "--iterations", "30",
                     "--set", "scales=1", "--set", "seed=2", *ADAM, "--quiet"])
    assert code == cli.EXIT_OK
    import json

    report = json.loads(out.with_suffix(".json").read_text())
    assert report["settings"]["content"] is None
    assert report["losses"]["content"] == 0.0
    history = report["history"]
    assert history[-1]["style"] < 0.2 * history[0]["style"]  # from noise towards the style statistics
    with PILImage.open(out) as image:
        assert image.size == (48, 48)


def test_a_spec_without_content_is_a_texture_job_with_the_style_aspect(tmp_path):
    source = tmp_path / "wide.png"
    PILImage.fromarray((stripes(32, 4)[:, :] * 255).astype(np.uint8)).resize((64, 32)).save(source)
    job = load_job(build_job_spec({"style": str(source), "size": 64, "iterations": 2, "scales": 1}),
                   relative_to(tmp_path))
    result = render(job, make_plugin_manager())
    assert result.image.shape == (32, 64, 3)


# --- alignment ----------------------------------------------------------------------------------


def stripes(size: int, period: int) -> np.ndarray:
    """Horizontal dark/light stripes: perfectly aligned rows."""
    rows = (np.arange(size) % period < period // 2).astype(np.float32)
    return np.repeat(np.repeat(rows[:, None, None], size, axis=1), 3, axis=2) * 0.6 + 0.2


def brick_wall(size: int = 64, height: int = 8, width: int = 16, mortar: int = 2, seed: int = 0) -> np.ndarray:
    """A synthetic brick wall: rows of bricks with a half-brick offset every other row, light mortar."""
    rng = np.random.default_rng(seed)
    wall = np.full((size, size, 3), 0.85, np.float32)
    for row in range(size // height):
        offset = (width // 2) * (row % 2)
        for col in range(-1, size // width + 1):
            left = col * width + offset
            colour = rng.uniform(0.35, 0.75) * np.array([0.9, 0.45, 0.3]) + rng.uniform(-0.05, 0.05)
            top = row * height
            wall[top:top + height - mortar, max(0, left):max(0, left + width - mortar)] = colour
    return wall


def test_measures_see_aligned_rows():
    wall = brick_wall()
    assert long_range.period(wall, axis=0) == 16  # two rows: every other row is offset by half a brick
    assert long_range.coherence(wall, axis=0) > 0.3
    noise = np.random.default_rng(0).uniform(size=(64, 64, 3))
    assert long_range.coherence(noise, axis=0) < 0.05
    assert long_range.alignment_error(wall, wall, axis=0) == pytest.approx(0.0, abs=1e-9)
    assert long_range.alignment_error(noise, wall, axis=0) > 0.3
    broken = wall.copy()
    broken[:, 32:] = np.roll(wall[:, 32:], 4, axis=0)  # the right half's rows shifted by half a row
    assert long_range.coherence(broken, axis=0) < 0.5 * long_range.coherence(wall, axis=0)


@pytest.mark.slow
def test_long_range_keeps_the_rows_of_a_regular_texture_aligned(tmp_path):
    source = tmp_path / "wall.png"
    wall = brick_wall(size=64)
    PILImage.fromarray((wall * 255).round().astype(np.uint8)).save(source)
    pm = make_plugin_manager()
    scores = {}
    for name, plugins in (("gram", {}), ("long_range", {"long_range": {}})):
        spec = build_job_spec({"style": str(source), "size": 64, "iterations": 80, "scales": 1, "seed": 4,
                               "optimizer": "adam", "learning_rate": ADAM_RATE, "plugins": plugins})
        image = render(load_job(spec, relative_to(Path.cwd())), pm).image
        scores[name] = (long_range.alignment_error(image, wall, axis=0), long_range.coherence(image, axis=0))
    (gram_error, gram_rows), (lr_error, lr_rows) = scores["gram"], scores["long_range"]
    assert lr_error < 0.75 * gram_error, scores
    assert lr_rows > gram_rows, scores
