"""The loss compiled with XLA (used at large scales) gives the plain loss's values and gradients,
with the built-in terms and the first-party plugins' terms alike."""

from __future__ import annotations

import numpy as np
import pytest

from styled.engine import gatys, objective
from styled.engine.job import load_job, relative_to
from styled.engine.spec import build_job_spec
from styled.engine.types import ScaleJob
from styled.nets.vgg import FeatureExtractor
from styled.nets.weights import load_backbone
from styled.plugins import make_plugin_manager, validate_job

pytestmark = pytest.mark.slow  # XLA compiles for a few seconds


def test_xla_and_plain_losses_agree_with_plugin_terms(tiny_images, tmp_path):
    import tensorflow as tf

    spec = build_job_spec({"content": str(tiny_images["content"]), "style": str(tiny_images["style"]), "size": 48,
                           "plugins": {"symmetry": {"mode": "statistics"}, "long_range": {"weight": 1.0}}})
    plugins = make_plugin_manager()
    job = validate_job(plugins, load_job(spec, relative_to(tmp_path)))
    extractor = FeatureExtractor(load_backbone("vgg19"), "avg", tf.float32)
    height, width = job.output_shape(48)
    content = tf.constant(job.content.pixels[None])
    styles = tuple(tf.constant(style.pixels[None]) for style in job.styles)
    scale_job = ScaleJob(job, tf.image.resize(content, (height, width)), styles, (1.0,), 0, 1, extractor)
    terms = gatys.collect_terms(plugins, scale_job)
    assert {"style", "content", "long_range"} <= {term.name for term in terms}
    image = np.random.default_rng(0).uniform(0, 1, (height, width, 3)).astype(np.float32)
    plain = objective.compile_loss(extractor, terms, (height, width), xla_min_pixels=10**9)(image)
    compiled = objective.compile_loss(extractor, terms, (height, width), xla_min_pixels=0)(image)
    assert compiled[0] == pytest.approx(plain[0], rel=1e-4)
    assert compiled[1] == pytest.approx(plain[1], rel=1e-3, abs=1e-7)
    np.testing.assert_allclose(compiled[2], plain[2], rtol=1e-3, atol=1e-6 * np.abs(plain[2]).max())


def test_tiles_that_keep_their_activations_compile_with_xla_to_the_plain_loss(tiny_images, tmp_path):
    import tensorflow as tf

    from styled.engine import memory
    from styled.engine.types import Window

    spec = build_job_spec({"content": str(tiny_images["content"]), "style": str(tiny_images["style"]), "size": 96,
                           "content_layers": ["relu3_1"], "style_layers": ["relu1_1", "relu2_1", "relu3_1"]})
    plugins = make_plugin_manager()
    job = validate_job(plugins, load_job(spec, relative_to(tmp_path)))
    extractor = FeatureExtractor(load_backbone("vgg19"), "avg", tf.float32)
    height, width = job.output_shape(96)
    content = tf.image.resize(tf.constant(job.content.pixels[None]), (height, width))
    styles = tuple(tf.constant(style.pixels[None]) for style in job.styles)
    halo, _ = memory.halo_and_alignment(["relu1_1", "relu2_1", "relu3_1"])
    scale_job = ScaleJob(job, content, styles, (1.0,), 0, 1, extractor, (32, 32), halo)
    terms = gatys.collect_terms(plugins, scale_job)
    windows = Window.grid((height, width), 32, halo)
    image = np.random.default_rng(0).uniform(0, 1, (height, width, 3)).astype(np.float32)
    plain = objective.TiledLoss(extractor, terms, windows, xla_min_pixels=10**9, keep=True)(image)
    compiled = objective.TiledLoss(extractor, terms, windows, xla_min_pixels=0, keep=True)(image)
    assert compiled[0] == pytest.approx(plain[0], rel=1e-4)
    np.testing.assert_allclose(compiled[2], plain[2], rtol=1e-3, atol=1e-5 * np.abs(plain[2]).max())
