"""Content, Gram-style and total-variation terms as small pure functions.

The normalisation is chosen so that a weight means the same thing at every image size:
content is a mean, each Gram matrix is divided by C·H·W, and TV is a mean.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import tensorflow as tf

from styled.engine.types import LossTerm, ScaleJob, Tiling, Window
from styled.nets.layers import stride_of


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


def content_term(weight: float, layers: Sequence[str], targets: Callable[[Window], tuple]) -> LossTerm:
    """Content: mean over the content layers of the mean squared activation difference.

    ``targets(window)`` gives the content image's activations at the window's core positions, one
    per layer, in ``layers`` order.
    """

    def partial(image: tf.Tensor, features: Mapping[str, tf.Tensor], window: Window, goal: tuple) -> tuple:
        sums = []
        for name, target in zip(layers, goal):
            difference = window.core_of(features[name], stride_of(name)) - target
            sums += [tf.reduce_sum(tf.square(difference)), _count(difference)]
        return tuple(sums)

    def combine(sums: tuple) -> tf.Tensor:
        return tf.add_n([sums[i] / sums[i + 1] for i in range(0, len(sums), 2)]) / len(layers)

    return LossTerm.tiled("content", weight, Tiling(partial, combine, targets), layers)


def style_term(weight: float, layer_weights: Mapping[str, float], targets: Mapping[str, tf.Tensor]) -> LossTerm:
    """Style: the mean over the style layers of each layer's weighted Gram loss.

    Tiled, each tile adds FᵀF over its core positions and the positions' count; the Gram is their
    quotient, as ``gram`` computes it for the whole image.
    """
    names = tuple(layer_weights)

    def partial(image: tf.Tensor, features: Mapping[str, tf.Tensor], window: Window, goal: tuple) -> tuple:
        return tuple(part for name in names for part in gram_parts(window.core_of(features[name], stride_of(name))))

    def combine(sums: tuple) -> tf.Tensor:
        per_layer = [layer_weights[name] * tf.reduce_sum(tf.square(sums[2 * i] / sums[2 * i + 1] - targets[name]))
                     for i, name in enumerate(names)]
        return tf.add_n(per_layer) / len(per_layer)

    return LossTerm.tiled("style", weight, Tiling(partial, combine), names)


def gram_parts(features: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """FᵀF and C·(number of positions) of a (1, h, w, C) activation: ``gram`` is their quotient."""
    flat = tf.reshape(features, (-1, tf.shape(features)[-1]))
    return tf.matmul(flat, flat, transpose_a=True), _count(flat)


def tiled_grams(job: ScaleJob, image: tf.Tensor, layers: Sequence[str]) -> dict[str, tf.Tensor]:
    """The Gram matrices of ``image`` (1, H, W, 3) at ``layers``, summed tile by tile when the scale
    is tiled, so a print-size style image needs no more memory than a tile."""
    sums = tiled_sums(job, image, layers, lambda features, window: tuple(
        part for name in layers for part in gram_parts(window.core_of(features[name], stride_of(name)))))
    return {name: sums[2 * i] / sums[2 * i + 1] for i, name in enumerate(layers)}


def mean_square(job: ScaleJob, image: tf.Tensor, layers: Sequence[str]) -> float:
    """The mean square of ``image``'s (1, H, W, 3) activations at ``layers``, over all their values
    (tile by tile when the scale is tiled)."""
    sums = tiled_sums(job, image, layers, lambda features, window: tuple(
        part for name in layers for part in _square_sum_and_count(window.core_of(features[name], stride_of(name)))))
    return float(sum(sums[0::2]) / sum(sums[1::2]))


def _square_sum_and_count(values: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return tf.reduce_sum(tf.square(values)), _count(values)


def tiled_sums(job: ScaleJob, image: tf.Tensor, layers: Sequence[str],
               partial: Callable[[Mapping[str, tf.Tensor], Window], tuple]) -> tuple:
    """``partial(features, window)`` over the scale's tiles of ``image`` (1, H, W, 3), added up: the
    statistics of a style image at print size, computed with a tile's memory."""
    sums = None
    for window in job.windows(tuple(image.shape[1:3])):
        parts = partial(job.features(window.crop(image), layers), window)
        sums = parts if sums is None else tuple(a + b for a, b in zip(sums, parts))
    return sums


def tv_term(weight: float) -> LossTerm:
    """Total variation: smooths the high-frequency noise that VGG gradients leave behind.

    Tiled, a tile counts the differences whose first pixel lies in its core; the halo supplies the
    second pixel where the core ends inside the image.
    """

    def partial(image: tf.Tensor, features: Mapping[str, tf.Tensor], window: Window, goal: tuple) -> tuple:
        top, left, height, width = window.core
        rows = image[:, top:min(top + height + 1, window.height), left:left + width, :]
        columns = image[:, top:top + height, left:min(left + width + 1, window.width), :]
        dy, dx = rows[:, 1:] - rows[:, :-1], columns[:, :, 1:] - columns[:, :, :-1]
        return tf.reduce_sum(tf.square(dy)) + tf.reduce_sum(tf.square(dx)), _count(dy) + _count(dx)

    def combine(sums: tuple) -> tf.Tensor:
        return sums[0] / sums[1]

    return LossTerm.tiled("tv", weight, Tiling(partial, combine))


def temporal_term(weight: float, targets: Callable[[Window], tuple]) -> LossTerm:
    """Temporal consistency of a video frame (Ruder et al. 2016, eq. 7 with the long-term sum of eq. 9).

    Σⱼ (1/D) Σ cⱼ·(x − ωⱼ)², with D the number of pixel values and ωⱼ an earlier result warped into
    this frame. ``targets(window)`` gives, per earlier frame, the warped result and its weights c
    (broadcast over the channels) at the window's core.
    """

    def partial(image: tf.Tensor, features: Mapping[str, tf.Tensor], window: Window, goal: tuple) -> tuple:
        core = window.core_of(image)
        total = tf.add_n([tf.reduce_sum(weights * tf.square(core - warped))
                          for warped, weights in zip(goal[0::2], goal[1::2])])
        return total, _count(core)

    def combine(sums: tuple) -> tf.Tensor:
        return sums[0] / sums[1]

    return LossTerm.tiled("temporal", weight, Tiling(partial, combine, targets))


def _count(values: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.size(values), tf.float32)
