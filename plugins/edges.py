"""edges: keep the photo's edges sharp under the paint.

A loss term that ties the Sobel gradient magnitude of the result's luminance to the photo's, so
that outlines, window frames and horizons survive a heavy style. It is the edge-preserving idea of
Gatys et al.'s follow-ups (and of the Laplacian term of Li et al., "Laplacian-Steered Neural Style
Transfer", ACM MM 2017) in its simplest form: a mean squared difference of gradient magnitudes,
one weight, no network layer.

    plugins_dir: plugins          # config.yaml (or styled render --plugins-dir plugins)
    plugins:
      edges: {weight: 200}        # job.yaml

The term tiles (print sizes): each tile compares its core's magnitudes, reading one pixel of halo.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from styled import LossTerm, hookimpl
from styled.engine.types import Tiling, Window
from styled.plugins import Option, PluginSchema, number

NAME = "edges"
#: Rec. 601 luminance: edges are where brightness changes, whatever the colours do.
LUMA = (0.299, 0.587, 0.114)
#: Sobel reads one pixel on each side.
REACH = 1

SCHEMA = PluginSchema(
    NAME,
    (Option("weight", 100.0, "how strongly the result's edges follow the photo's", number(0.0)),),
    help="ties the result's Sobel edges to the photo's, so outlines survive the style",
)


def edge_magnitude(image: tf.Tensor) -> tf.Tensor:
    """|∇L| of a (1, H, W, 3) image's luminance by the Sobel operator: (1, H, W, 1)."""
    luma = tf.reduce_sum(image * tf.constant(LUMA, image.dtype), axis=-1, keepdims=True)
    gradients = tf.image.sobel_edges(luma)  # (1, H, W, 1, 2), reflected at the borders
    return tf.sqrt(tf.reduce_sum(tf.square(gradients), axis=-1) + 1e-12)


def edge_term(weight: float, photo: np.ndarray) -> LossTerm:
    """Mean squared difference of the result's and the photo's edge magnitudes."""
    target = edge_magnitude(tf.constant(photo[None], tf.float32)).numpy()[0]

    def targets(window: Window) -> tuple:
        (top, bottom), (left, right) = window.core_span()
        return (tf.constant(target[window.top + top:window.top + bottom, window.left + left:window.left + right][None]),)

    def partial(image: tf.Tensor, features: Mapping[str, tf.Tensor], window: Window, goal: tuple) -> tuple:
        difference = window.core_of(edge_magnitude(image)) - goal[0]
        return tf.reduce_sum(tf.square(difference)), tf.cast(tf.size(difference), tf.float32)

    def combine(sums: tuple) -> tf.Tensor:
        return sums[0] / sums[1]

    return LossTerm.tiled(NAME, weight, Tiling(partial, combine, targets, reach=REACH))


@hookimpl
def plugin_schema() -> PluginSchema:
    return SCHEMA


@hookimpl
def register_losses(job):
    options = SCHEMA.settings(job)
    if options is None:
        return []
    photo = SCHEMA.content_of(job, "whose edges to keep")
    return [edge_term(options["weight"], photo.numpy()[0])]


@hookimpl
def tiling_reach(job):
    return REACH if job.plugin_options(NAME) is not None else None
