"""symmetry: exact mode gives a mirror-symmetric output file; statistics mode is the paper's term."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf
from conftest import shared_image, tiny_copy
from PIL import Image as PILImage

from styled import cli, render
from styled.engine.job import load_job, relative_to
from styled.engine.spec import build_job_spec
from styled.plugins import make_plugin_manager
from styled.plugins.builtin import symmetry


def saved(path: Path) -> np.ndarray:
    return np.asarray(PILImage.open(path).convert("RGB"), np.float64) / 255


def test_symmetrise_is_the_nearest_symmetric_image():
    image = np.random.default_rng(0).uniform(size=(6, 8, 3))
    both = symmetry.symmetrise(image, symmetry.BOTH)
    assert np.array_equal(both, both[:, ::-1]) and np.array_equal(both, both[::-1])
    np.testing.assert_allclose(symmetry.symmetrise(both, symmetry.BOTH), both)  # a projection
    once = symmetry.symmetrise(image, symmetry.LEFT_RIGHT)
    np.testing.assert_allclose((image - once).sum(axis=1), 0.0, atol=1e-12)  # what is removed is antisymmetric


def test_exact_mode_renders_a_left_right_symmetric_photo(tiny_images, tmp_path):
    out = tmp_path / "mirrored.png"
    code = cli.main(["render", str(tiny_images["content"]), str(tiny_images["style"]), "-o", str(out),
                     "--size", "48", "--iterations", "8", "--set", "scales=1", "--quiet",
                     "--set", "plugins.symmetry.mirror=left-right"])
    assert code == cli.EXIT_OK
    image = saved(out)
    assert image.shape == (36, 48, 3)
    assert symmetry.mirror_error(image, symmetry.LEFT_RIGHT)[1] <= 1.0  # within one grey level (in fact 0)
    assert symmetry.mirror_error(saved(tiny_images["content"]), symmetry.LEFT_RIGHT)[0] > 10.0


@pytest.mark.slow
def test_exact_mode_both_mirrors_on_a_texture_over_two_scales(tmp_path):
    source = tiny_copy(shared_image("textures/symmetry1.jpg"), tmp_path / "balloon.png", 64)
    out = tmp_path / "texture.png"
    code = cli.main(["render", "--texture", str(source), "-o", str(out), "--size", "48", "--iterations", "6",
                     "--set", "scales=2", "--set", "scale_start=32", "--quiet",
                     "--set", "plugins.symmetry.mirror=both"])
    assert code == cli.EXIT_OK
    image = saved(out)
    assert symmetry.mirror_error(image, symmetry.BOTH)[1] <= 1.0
    assert image.std() > 0.05  # not a flat grey: the style is there


def test_statistics_target_is_the_papers_for_a_symmetric_source():
    from styled.nets.vgg import FeatureExtractor
    from styled.nets.weights import load_backbone

    extractor = FeatureExtractor(load_backbone("vgg19"))
    half = np.random.default_rng(1).uniform(size=(1, 64, 32, 3)).astype(np.float32)
    source = tf.constant(np.concatenate([half, half[:, :, ::-1]], axis=2))  # mirror-symmetric, 64 x 64
    job = SimpleNamespace(styles=(source,), style_weights=(1.0,), features=lambda image, layers: extractor(image, layers))
    layers, axis = ("relu2_1", "relu3_1"), 2
    ours = symmetry.targets(job, layers, (axis,))
    features = extractor(source, layers)
    for layer in layers:  # the paper's F^T flip(F) of the source itself
        papers = symmetry.mirrored_gram(features[layer], features[layer], axis).numpy()
        np.testing.assert_allclose(ours[(layer, axis)].numpy(), papers, rtol=1e-3, atol=1e-4 * np.abs(papers).max())


def test_statistics_mode_adds_the_mirrored_term_and_exact_mode_does_not(tiny_images):
    pm = make_plugin_manager()
    for mode, expected in (("statistics", True), ("exact", False)):
        spec = build_job_spec({"content": str(tiny_images["content"]), "style": str(tiny_images["style"]),
                               "size": 32, "iterations": 3, "scales": 1,
                               "plugins": {"symmetry": {"mode": mode, "mirror": "top-bottom"}}})
        result = render(load_job(spec, relative_to(Path.cwd())), pm)
        assert ("symmetry" in result.history[-1]) is expected
        json.dumps(result.report())  # the plugin's options stay JSON in the report


@pytest.mark.parametrize("mirror", symmetry.MIRRORS)
def test_mirror_error_is_zero_for_symmetric_images(mirror):
    image = symmetry.symmetrise(np.random.default_rng(2).uniform(size=(5, 7, 3)), mirror)
    assert symmetry.mirror_error(image, mirror) == (0.0, 0.0)


def test_exact_mode_mirrors_the_content_so_the_content_term_agrees_with_the_constraint(tiny_images):
    spec = build_job_spec({"content": str(tiny_images["content"]), "style": str(tiny_images["style"]),
                           "plugins": {"symmetry": {"mirror": "top-bottom"}}})
    job = load_job(spec, relative_to(Path.cwd()))
    prepared = symmetry.prepare_job(job)
    assert symmetry.mirror_error(prepared.content.pixels, symmetry.TOP_BOTTOM)[1] == 0.0
    assert symmetry.mirror_error(job.content.pixels, symmetry.TOP_BOTTOM)[1] > 0.0  # the input is untouched
    statistics = load_job(build_job_spec({**spec.to_dict(), "plugins": {"symmetry": {"mode": "statistics"}}}),
                          relative_to(Path.cwd()))
    assert symmetry.prepare_job(statistics) is None
