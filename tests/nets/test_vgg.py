"""The feature extractor's way back through kept ReLU outputs equals TensorFlow's own gradient."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from styled.nets.vgg import FeatureExtractor
from styled.nets.weights import load_backbone

LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_2")


def _tape_gradient(extractor: FeatureExtractor, image: tf.Tensor, cotangents: dict[str, tf.Tensor]) -> np.ndarray:
    with tf.GradientTape() as tape:
        tape.watch(image)
        features = extractor(image, cotangents)
        surrogate = tf.add_n([tf.reduce_sum(features[name] * cotangents[name]) for name in cotangents])
    return tape.gradient(surrogate, image).numpy()


@pytest.mark.parametrize("padding", ["REFLECT", "CONSTANT"])
@pytest.mark.parametrize("shape", [(1, 40, 56, 3), (1, 37, 29, 3)])  # odd sides: pooling pads the bottom/right
def test_the_gradient_from_kept_activations_equals_the_tapes(padding, shape):
    backbone = dataclasses.replace(load_backbone("vgg19"), padding=padding)
    extractor = FeatureExtractor(backbone, "avg", tf.float32)
    rng = np.random.default_rng(3)
    image = tf.constant(rng.uniform(0, 1, shape), tf.float32)
    kept = extractor.keeping(image, LAYERS)
    assert len(kept) == 10  # conv1_1 ... conv4_2: only as deep as the deepest layer asked for
    features = extractor.kept_layers(kept, LAYERS)
    cotangents = {name: tf.constant(rng.normal(size=value.shape), tf.float32) for name, value in features.items()}
    ours = extractor.input_gradient(shape, kept, cotangents).numpy()
    theirs = _tape_gradient(extractor, image, cotangents)
    assert ours.shape == theirs.shape == shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())


def test_kept_activations_are_the_extractors_and_a_layer_without_gradient_counts_nothing():
    extractor = FeatureExtractor(load_backbone("vgg19"), "avg", tf.float32)
    image = tf.constant(np.random.default_rng(4).uniform(0, 1, (1, 32, 32, 3)), tf.float32)
    kept = extractor.keeping(image, ("relu2_1",))
    assert len(kept) == 3
    np.testing.assert_array_equal(extractor.kept_layers(kept, ("relu2_1",))["relu2_1"].numpy(),
                                  extractor(image, ("relu2_1",))["relu2_1"].numpy())
    assert not extractor.input_gradient(image.shape, kept, {}).numpy().any()


def test_max_pooling_cannot_go_back_through_kept_activations():
    extractor = FeatureExtractor(load_backbone("vgg19"), "max", tf.float32)
    assert not extractor.can_keep
    with pytest.raises(ValueError, match="average pooling"):
        extractor.keeping(tf.zeros((1, 16, 16, 3)), ("relu1_1",))
