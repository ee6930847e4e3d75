"""The loss compiled with XLA (used at large scales) gives the plain loss's values and gradients,
with the built-in terms and the first-party plugins' terms alike."""

from __future__ import annotations

import numpy as np
import pytest
from engine_support import scale_terms

from styled.engine import memory, objective
from styled.engine.types import Window

pytestmark = pytest.mark.slow  # XLA compiles for a few seconds


def test_xla_and_plain_losses_agree_with_plugin_terms(tiny_images, tmp_path):
    extractor, terms, scale_job = scale_terms(tiny_images, tmp_path, 48, None, 0, plugins={
        "symmetry": {"mode": "statistics"}, "long_range": {"weight": 1.0}})
    assert {"style", "content", "long_range"} <= {term.name for term in terms}
    image = np.random.default_rng(0).uniform(0, 1, (*scale_job.shape, 3)).astype(np.float32)
    plain = objective.compile_loss(extractor, terms, scale_job.shape, xla_min_pixels=10**9)(image)
    compiled = objective.compile_loss(extractor, terms, scale_job.shape, xla_min_pixels=0)(image)
    assert compiled[0] == pytest.approx(plain[0], rel=1e-4)
    assert compiled[1] == pytest.approx(plain[1], rel=1e-3, abs=1e-7)
    np.testing.assert_allclose(compiled[2], plain[2], rtol=1e-3, atol=1e-6 * np.abs(plain[2]).max())


def test_tiles_that_keep_their_activations_compile_with_xla_to_the_plain_loss(tiny_images, tmp_path):
    layers = ["relu1_1", "relu2_1", "relu3_1"]
    halo, _ = memory.halo_and_alignment(layers)
    extractor, terms, scale_job = scale_terms(tiny_images, tmp_path, 96, (32, 32), halo,
                                              content_layers=["relu3_1"], style_layers=layers)
    windows = Window.grid(scale_job.shape, 32, halo)
    image = np.random.default_rng(0).uniform(0, 1, (*scale_job.shape, 3)).astype(np.float32)
    plain = objective.TiledLoss(extractor, terms, windows, xla_min_pixels=10**9, keep=True)(image)
    compiled = objective.TiledLoss(extractor, terms, windows, xla_min_pixels=0, keep=True)(image)
    assert compiled[0] == pytest.approx(plain[0], rel=1e-4)
    np.testing.assert_allclose(compiled[2], plain[2], rtol=1e-3, atol=1e-5 * np.abs(plain[2]).max())
