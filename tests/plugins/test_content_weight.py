"""Above the photo's own resolution the content term keeps its balance with the style."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from styled.engine.job import Job
from styled.engine.memory import halo_and_alignment
from styled.engine.spec import build_job_spec
from styled.engine.types import ScaleJob
from styled.io import images
from styled.nets.vgg import FeatureExtractor
from styled.nets.weights import load_backbone
from styled.plugins.builtin import gatys

LAYERS = ("relu4_2",)


@pytest.fixture(scope="module")
def extractor() -> FeatureExtractor:
    return FeatureExtractor(load_backbone("vgg19"))


def scale_job(photo: images.Image, size: int, extractor: FeatureExtractor | None,
              tile: tuple[int, int] | None = None) -> ScaleJob:
    spec = build_job_spec({"content": "photo.png", "style": "style.png", "size": size, "scales": 1,
                           "content_weight": 3.0})
    job = Job(spec=spec, content=photo, styles=(photo,))
    height, width = job.output_shape(size)
    content = tf.constant(images.resize_to(photo.pixels, width, height)[None], tf.float32)
    halo = halo_and_alignment(LAYERS)[0] if tile else 0
    return ScaleJob(job, content, (), (1.0,), 0, 1, extractor=extractor, tile=tile, halo=halo)


def mean_square(extractor: FeatureExtractor, pixels: np.ndarray) -> float:
    return float(tf.reduce_mean(tf.square(extractor(tf.constant(pixels[None], tf.float32), LAYERS)["relu4_2"])))


@pytest.fixture(scope="module")
def photo(tiny_images) -> images.Image:
    return images.load_image(tiny_images["content"])  # 64x48


def test_above_the_photos_size_the_weight_is_scaled_by_the_photos_energy_there(photo, extractor):
    job = scale_job(photo, 128, extractor)
    enlarged = job.content.numpy()[0]
    factor = mean_square(extractor, photo.pixels) / mean_square(extractor, enlarged)
    assert abs(factor - 1) > 0.05  # enlarging a photo beyond its detail does change its energy
    np.testing.assert_allclose(gatys.content_weight(job), 3.0 * factor, rtol=1e-4)
    [content, *_] = gatys.register_losses(job=job)
    assert content.name == "content"
    np.testing.assert_allclose(content.weight, 3.0 * factor, rtol=1e-4)


def test_tiled_the_weight_is_the_same(photo, extractor):
    whole = gatys.content_weight(scale_job(photo, 128, extractor))
    np.testing.assert_allclose(gatys.content_weight(scale_job(photo, 128, extractor, tile=(32, 32))), whole,
                               rtol=1e-4)


@pytest.mark.parametrize("size", [32, 64])
def test_at_or_below_the_photos_size_the_weight_is_as_given_with_no_pass(photo, size):
    assert gatys.content_weight(scale_job(photo, size, extractor=None)) == 3.0
