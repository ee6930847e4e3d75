"""season_transfer: presets fill only what the job left at its defaults, the guided filter keeps the
content's edges, and a small real run moves the colours toward the reference with the content's edges."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_image, tiny_copy

from styled import render
from styled.engine.job import load_job, relative_to
from styled.engine.spec import build_job_spec
from styled.errors import PluginError
from styled.io.images import load_image, resize_to
from styled.plugins import make_plugin_manager
from styled.plugins.builtin import season_transfer


def test_the_guided_filter_reproduces_a_source_that_is_affine_in_the_guide():
    guide = np.random.default_rng(0).uniform(size=(20, 24, 3))
    mix = np.array([[0.5, 0.1, 0.0], [0.0, 0.3, 0.2], [0.1, 0.0, 0.6]])
    source = guide @ mix + 0.1
    filtered = season_transfer.guided_filter(guide, source, radius=2, epsilon=1e-6)
    np.testing.assert_allclose(filtered, source, atol=1e-3)


def test_the_guided_filter_puts_a_blurred_edge_back_where_the_guide_has_it():
    guide = np.zeros((16, 32, 3))
    guide[:, 16:] = 1.0  # a sharp vertical edge
    blurred = np.repeat(np.clip((np.arange(32) - 12) / 8, 0, 1)[None, :, None], 16, axis=0) * np.ones(3)
    filtered = season_transfer.guided_filter(guide, blurred, radius=3, epsilon=1e-4)
    before = season_transfer.edge_agreement(blurred, guide)
    after = season_transfer.edge_agreement(filtered, guide)
    assert after > 0.95 > before


def test_box_mean_cuts_the_window_at_the_borders():
    values = np.arange(5, dtype=float)[None, :, None] * np.ones((3, 1, 1))
    np.testing.assert_allclose(season_transfer.box_mean(values, 1)[1, :, 0], [0.5, 1.0, 2.0, 3.0, 3.5])


def test_a_preset_fills_only_the_settings_the_job_left_at_their_defaults():
    spec = build_job_spec({"content": "a.jpg", "style": "b.jpg", "content_weight": 7.0,
                           "plugins": {"season_transfer": {}}})
    preset = season_transfer.PRESETS[season_transfer.PHOTO]
    changed = season_transfer.with_preset(spec, preset, long_range_on=True)
    assert changed.content_weight == 7.0  # the job's own choice
    assert changed.style_layers == preset["style_layers"] and changed.tv_weight == preset["tv_weight"]
    assert changed.plugins["long_range"] == {"layers": season_transfer.LONG_RANGE_LAYERS}
    assert "long_range" not in season_transfer.with_preset(spec, preset, long_range_on=False).plugins
    own = dataclasses.replace(spec, plugins={**spec.plugins, "long_range": {"layers": {"relu4_1": [2]}}})
    assert season_transfer.with_preset(own, preset, True).plugins["long_range"] == {"layers": {"relu4_1": [2]}}


def test_season_transfer_needs_a_content_photo():
    spec = build_job_spec({"style": str(shared_image("seasons/tree_winter.jpg")), "size": 32, "iterations": 1,
                           "scales": 1, "plugins": {"season_transfer": {}}})
    with pytest.raises(PluginError, match="season_transfer needs a content image"):
        render(load_job(spec, relative_to(Path.cwd())), make_plugin_manager())


@pytest.fixture(scope="module")
def seasons(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("seasons")
    return {"summer": tiny_copy(shared_image("seasons/tree_summer.jpg"), folder / "summer.png", 96),
            "winter": tiny_copy(shared_image("seasons/tree_winter.jpg"), folder / "winter.png", 96)}


@pytest.mark.slow
def test_colours_move_to_the_reference_and_edges_stay_the_contents(seasons):
    pm = make_plugin_manager()
    outputs = {}
    for name, plugins in (("gatys", {}), ("season", {"season_transfer": {}})):
        spec = build_job_spec({"content": str(seasons["summer"]), "style": str(seasons["winter"]), "size": 96,
                               "iterations": 40, "scales": 2, "scale_start": 48, "seed": 1, "plugins": plugins})
        result = render(load_job(spec, relative_to(Path.cwd())), pm)
        outputs[name] = result.image
        if name == "season":
            assert "long_range" in result.history[-1]  # the preset turned it on
            assert "photorealism" in result.history[-1] and "photorealism" not in result.history[0], \
                "the matting-Laplacian term works at the last scale only"
            assert result.settings["tv_weight"] == season_transfer.PRESETS["photo"]["tv_weight"]
    content = load_image(seasons["summer"]).pixels
    height, width = outputs["season"].shape[:2]
    content = resize_to(content, width, height)
    reference = load_image(seasons["winter"]).pixels
    before = season_transfer.colour_distance(content, reference)
    after = season_transfer.colour_distance(outputs["season"], reference)
    assert after < 0.85 * before, (before, after)
    edges = {name: season_transfer.edge_agreement(image, content) for name, image in outputs.items()}
    assert edges["season"] > edges["gatys"] + 0.1, edges
    sharpness = season_transfer.gradient_magnitude(outputs["season"]).mean() / \
        season_transfer.gradient_magnitude(content).mean()
    assert sharpness > 0.7, "a sharp photo, not a blur (0.79 at 96 px; 0.88-0.93 at 256 px, docs/plugins.md)"


def matting_laplacian(guide: np.ndarray, epsilon: float, radius: int = 1) -> np.ndarray:
    """Levin, Lischinski & Weiss (2008), eq. 12, built entry by entry: the reference for the term."""
    height, width = guide.shape[:2]
    size = 2 * radius + 1
    count = size * size
    laplacian = np.zeros((height * width, height * width))
    for top in range(height - size + 1):
        for left in range(width - size + 1):
            index = [(top + i) * width + left + j for i in range(size) for j in range(size)]
            window = guide[top:top + size, left:left + size].reshape(-1, 3).astype(np.float64)
            mean = window.mean(0)
            covariance = np.cov(window, rowvar=False, bias=True) + epsilon / count * np.eye(3)
            centred = window - mean
            block = np.eye(count) - (1 + centred @ np.linalg.inv(covariance) @ centred.T) / count
            laplacian[np.ix_(index, index)] += block
    return laplacian


def test_the_photorealism_term_is_levins_matting_laplacian_and_its_gradient_is_exact():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    guide = rng.uniform(0, 1, (6, 7, 3)).astype(np.float32)
    output = rng.uniform(0, 1, (6, 7, 3)).astype(np.float64)
    epsilon = 1e-3
    laplacian = matting_laplacian(guide, epsilon)
    quadratic = sum(output[..., c].ravel() @ laplacian @ output[..., c].ravel() for c in range(3))
    residual = season_transfer.affine_residual(tf.constant(output[None], tf.float64),
                                               tf.constant(guide[None], tf.float64), epsilon=epsilon)
    assert float(tf.reduce_sum(residual)) * 9 == pytest.approx(quadratic, rel=1e-6)

    term = season_transfer.photorealism_term(1.0, guide)
    image = tf.Variable(output[None].astype(np.float32))
    with tf.GradientTape() as tape:
        value = term.fn(image, {})
    gradient = tape.gradient(value, image).numpy()[0]
    for y, x, c in ((2, 3, 0), (0, 0, 1), (5, 6, 2), (3, 1, 1)):
        step = np.zeros_like(output, np.float32)
        step[y, x, c] = 1e-3
        plus = float(term.fn(tf.constant((output + step)[None], tf.float32), {}))
        minus = float(term.fn(tf.constant((output - step)[None], tf.float32), {}))
        assert gradient[y, x, c] == pytest.approx((plus - minus) / 2e-3, rel=2e-2, abs=1e-5)


def test_the_photorealism_term_tiles_exactly():
    import tensorflow as tf

    from styled.engine.types import Window

    rng = np.random.default_rng(1)
    guide = rng.uniform(0, 1, (20, 24, 3)).astype(np.float32)
    output = tf.constant(rng.uniform(0, 1, (1, 20, 24, 3)).astype(np.float32))
    term = season_transfer.photorealism_term(1.0, guide)
    whole = float(term.fn(output, {}))
    windows = Window.grid((20, 24), (8, 8), halo=term.tiling.reach)
    sums = [term.tiling.partial(window.crop(output), {}, window.local(), term.tiling.targets(window))
            for window in windows]
    tiled = float(term.tiling.combine(tuple(sum(part[i] for part in sums) for i in range(2))))
    assert tiled == pytest.approx(whole, rel=1e-5)


def test_a_tiled_season_render_gives_the_untiled_picture(seasons):
    """Print sizes tile: the photorealism term's window sums cross the tiles' edges exactly."""
    pm = make_plugin_manager()

    def run(tile_size):
        spec = build_job_spec({"content": str(seasons["summer"]), "style": str(seasons["winter"]), "size": 64,
                               "iterations": 4, "scales": 1, "seed": 1, "precision": "float32",
                               "tile_size": tile_size, "plugins": {"season_transfer": {}}})
        return render(load_job(spec, relative_to(Path.cwd())), pm)

    whole, tiled = run("auto"), run(32)
    assert tiled.memory[0]["tiles"] > 1
    assert tiled.losses["photorealism"] == pytest.approx(whole.losses["photorealism"], rel=1e-3)
    assert np.abs(tiled.image - whole.image).max() < 2 / 255
