"""Each loss is zero on identical inputs and positive otherwise; Grams are normalised by C·H·W."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from styled.engine.losses import blend_grams, content_loss, gram, gram_loss, tv_loss


def random_features(seed: int, shape=(1, 6, 5, 4)) -> tf.Tensor:
    return tf.constant(np.random.default_rng(seed).uniform(0, 1, shape), tf.float32)


def test_gram_is_normalised_by_channels_height_width():
    features = random_features(0)
    flat = features.numpy().reshape(-1, 4)
    expected = flat.T @ flat / flat.size
    np.testing.assert_allclose(gram(features).numpy(), expected, rtol=1e-5)


def test_gram_does_not_depend_on_image_size_for_a_repeated_pattern():
    tile = random_features(1, (1, 4, 4, 3)).numpy()
    big = np.tile(tile, (1, 3, 3, 1))
    np.testing.assert_allclose(gram(tf.constant(big)).numpy(), gram(tf.constant(tile)).numpy(), rtol=1e-5)


@pytest.mark.parametrize("loss", [content_loss, lambda a, b: gram_loss(a, gram(b))])
def test_feature_losses_are_zero_on_identical_inputs_and_positive_otherwise(loss):
    a, b = random_features(2), random_features(3)
    assert float(loss(a, a)) == 0.0
    assert float(loss(a, b)) > 0.0


def test_tv_is_zero_on_a_flat_image_and_positive_on_noise():
    flat = tf.fill((1, 8, 8, 3), 0.5)
    assert float(tv_loss(flat)) == 0.0
    assert float(tv_loss(random_features(4, (1, 8, 8, 3)))) > 0.0


def test_tv_is_the_mean_squared_neighbour_difference():
    stripes = np.zeros((1, 4, 4, 1), np.float32)
    stripes[:, :, 1::2] = 1.0  # every horizontal neighbour differs by 1, no vertical one does
    assert float(tv_loss(tf.constant(stripes))) == pytest.approx(12 / 24)


def test_blended_gram_is_the_weighted_sum():
    a, b = gram(random_features(5)), gram(random_features(6))
    np.testing.assert_allclose(blend_grams([a, b], [0.25, 0.75]).numpy(), (0.25 * a + 0.75 * b).numpy(), rtol=1e-6)
