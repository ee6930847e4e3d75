"""Content, Gram-style and total-variation terms as small pure functions.

The normalisation is chosen so that a weight means the same thing at every image size:
content is a mean, each Gram matrix is divided by C·H·W, and TV is a mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import tensorflow as tf

from styled.engine.types import LossTerm


def gram(features: tf.Tensor) -> tf.Tensor:
    """Gram matrix G = FᵀF / (C·H·W) of a (1, H, W, C) activation (Gatys et al. 2015, eq. 3).

    Departs from the paper by normalising with C·H·W, so the style weight does not depend on
    image size or layer width.
    """
    flat = tf.reshape(features, (-1, tf.shape(features)[-1]))
    return tf.matmul(flat, flat, transpose_a=True) / tf.cast(tf.size(flat), tf.float32)


def content_loss(features: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Mean squared difference of activations (Gatys et al. 2015, eq. 1, as a mean not a sum)."""
    return tf.reduce_mean(tf.square(features - target))


def gram_loss(features: tf.Tensor, target_gram: tf.Tensor) -> tf.Tensor:
    """Sum of squared differences between Gram matrices (Gatys et al. 2015, eq. 4, unscaled)."""
    return tf.reduce_sum(tf.square(gram(features) - target_gram))


def tv_loss(image: tf.Tensor) -> tf.Tensor:
    """Mean squared difference between horizontally and vertically neighbouring pixels."""
    dy = image[:, 1:, :, :] - image[:, :-1, :, :]
    dx = image[:, :, 1:, :] - image[:, :, :-1, :]
    count = tf.cast(tf.size(dy) + tf.size(dx), tf.float32)
    return (tf.reduce_sum(tf.square(dy)) + tf.reduce_sum(tf.square(dx))) / count


def blend_grams(grams: Sequence[tf.Tensor], weights: Sequence[float]) -> tf.Tensor:
    """The style target of several style images: their Grams blended by the given weights."""
    return tf.add_n([weight * g for g, weight in zip(grams, weights)])


def content_term(weight: float, layers: Sequence[str], targets: Mapping[str, tf.Tensor]) -> LossTerm:
    """Content: mean over the content layers of the mean squared activation difference."""

    def fn(image: tf.Tensor, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        return tf.add_n([content_loss(features[name], targets[name]) for name in layers]) / len(layers)

    return LossTerm("content", weight, fn, tuple(layers))


def style_term(weight: float, layer_weights: Mapping[str, float], targets: Mapping[str, tf.Tensor]) -> LossTerm:
    """Style: the mean over the style layers of each layer's weighted Gram loss."""

    def fn(image: tf.Tensor, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        per_layer = [w * gram_loss(features[name], targets[name]) for name, w in layer_weights.items()]
        return tf.add_n(per_layer) / len(per_layer)

    return LossTerm("style", weight, fn, tuple(layer_weights))


def tv_term(weight: float) -> LossTerm:
    """Total variation: smooths the high-frequency noise that VGG gradients leave behind."""
    return LossTerm("tv", weight, lambda image, features: tv_loss(image))
