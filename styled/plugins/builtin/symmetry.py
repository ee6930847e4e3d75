"""Mirror symmetry, either imposed exactly or encouraged through feature statistics.

``mode: exact`` projects the image onto the mirror-symmetric images after every optimiser step
(the ``constrain_image`` hook: the average of the image and its mirror image is the nearest
symmetric image in the L2 sense) and once more on the final image, so the output is symmetric to
the last bit. The content photo is symmetrised the same way first (``prepare_job``): the content
term then asks for something the constraint allows, instead of pulling against it at every step.

``mode: statistics`` is the form of Berger & Memisevic, "Incorporating long-range consistency in
CNN-based texture generation", ICLR 2017, section 4.2 (symmetric textures): the cross-correlation
between a layer's feature maps and their mirror images, A = Fᵀ flip(F), is matched to that of the
source, so that symmetric structures emerge without being imposed.

Where we depart from the paper: the target is Fᵀ flip(F(flip(S))) of the style image S, not
Fᵀ flip(F) of S. The two are the same when S is mirror-symmetric (the paper's inputs are), but only
ours is also the statistic that a symmetric image with S's local statistics would have when S is
not symmetric: flip(F(flip(S))) is the response of the mirrored filters at the same place. So the
term asks for symmetry with any style image, and for a symmetric source it is the paper's term.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from styled.engine.losses import blend_grams
from styled.engine.types import LossTerm
from styled.nets.layers import vgg_layers
from styled.plugins.builtin.long_range import cross_gram
from styled.plugins.hookspecs import hookimpl
from styled.plugins.schema import Option, PluginSchema, number, one_of, optional

NAME = "symmetry"
LEFT_RIGHT, TOP_BOTTOM, BOTH = "left-right", "top-bottom", "both"
MIRRORS = (LEFT_RIGHT, TOP_BOTTOM, BOTH)
EXACT, STATISTICS = "exact", "statistics"
MODES = (EXACT, STATISTICS)
#: Axes of an (H, W, 3) image that each mirror reverses; a (1, H, W, C) tensor's are one further.
IMAGE_AXES = {LEFT_RIGHT: (1,), TOP_BOTTOM: (0,), BOTH: (1, 0)}
#: Statistics mode: the first ReLU of blocks 2-5. relu1_1 sees too little to tell a shape from its
#: mirror image, and the deep layers are where the whole-image arrangement is decided.
DEFAULT_LAYERS = ("relu2_1", "relu3_1", "relu4_1", "relu5_1")
#: Statistics mode: the term's weight relative to the job's style_weight. At 1x the mean mirror
#: difference of symmetry1.jpg at 256 px drops to a quarter, with the texture intact (docs/plugins.md).
DEFAULT_RELATIVE_WEIGHT = 1.0


def _layers(value: Any) -> list[str]:
    """A VGG layer or a list of them, as a list (YAML's spelling)."""
    return list(vgg_layers(value))


SCHEMA = PluginSchema(
    NAME,
    (
        Option("mirror", LEFT_RIGHT, "which mirror: left-right, top-bottom or both", one_of(*MIRRORS)),
        Option("mode", EXACT, "exact: the output is symmetric; statistics: the paper's feature statistics",
               one_of(*MODES)),
        Option("layers", list(DEFAULT_LAYERS), "statistics mode: the VGG layers whose mirrored statistics match",
               _layers),
        Option("weight", None, "statistics mode: the term's weight; default: the job's style_weight",
               optional(number(0.0))),
    ),
    help="mirror symmetry: exact (projection) or Berger & Memisevic's mirrored cross-correlations",
)


@hookimpl
def plugin_schema() -> PluginSchema:
    return SCHEMA



# --- exact --------------------------------------------------------------------------------------


def symmetrise(image: np.ndarray, mirror: str) -> np.ndarray:
    """The nearest mirror-symmetric image to an (H, W, 3) image: the mean with its mirror image, per mirror.

    (a + b) / 2 and (b + a) / 2 round alike, so the result is symmetric to the last bit.
    """
    for axis in IMAGE_AXES[mirror]:
        image = 0.5 * (image + np.flip(image, axis))
    return image


@hookimpl
def prepare_job(job):
    """Exact mode: mirror the content photo too, so that the content term does not pull against the constraint."""
    options = SCHEMA.settings(job)
    if options is None or options["mode"] != EXACT or job.content is None:
        return None
    content = dataclasses.replace(job.content, pixels=symmetrise(job.content.pixels, options["mirror"]))
    return dataclasses.replace(job, content=content)


@hookimpl
def constrain_image(job, image):
    """Exact mode: project the (1, H, W, 3) image onto the symmetric images."""
    options = SCHEMA.settings(job)
    if options is None or options["mode"] != EXACT:
        return None
    return symmetrise(np.asarray(image)[0], options["mirror"])[None]


@hookimpl
def finalize_image(job, image):
    """Exact mode: symmetrise the final image too (colour preservation may have run after the last step)."""
    options = SCHEMA.settings(job)
    if options is None or options["mode"] != EXACT:
        return None
    return symmetrise(np.asarray(image), options["mirror"])


# --- statistics ---------------------------------------------------------------------------------


def mirrored_gram(features: tf.Tensor, mirrored: tf.Tensor, axis: int) -> tf.Tensor:
    """Fᵀ flip(M) along ``axis`` of (1, H, W, C) activations: Berger & Memisevic (2017), section 4.2."""
    return cross_gram(features, tf.reverse(mirrored, [axis]))


def tensor_axes(mirror: str) -> tuple[int, ...]:
    """The axes of a (1, H, W, C) tensor that ``mirror`` reverses."""
    return tuple(axis + 1 for axis in IMAGE_AXES[mirror])


def targets(job, layers: Sequence[str], axes: Sequence[int]) -> dict[tuple[str, int], tf.Tensor]:
    """Fᵀ flip(F(flip(S))) of every style image S, blended by the style weights."""
    per_style = []
    for style in job.styles:
        features = job.features(style, layers)
        stats = {}
        for axis in axes:
            flipped = job.features(tf.reverse(style, [axis]), layers)
            stats.update({(layer, axis): mirrored_gram(features[layer], flipped[layer], axis) for layer in layers})
        per_style.append(stats)
    return {key: blend_grams([stats[key] for stats in per_style], job.style_weights) for key in per_style[0]}


def symmetry_term(weight: float, layers: Sequence[str], axes: Sequence[int],
                  goal: Mapping[tuple[str, int], tf.Tensor]) -> LossTerm:
    """Mean over layers and mirrors of ‖Fᵀ flip(F) - target‖² of the current image."""

    def fn(image: tf.Tensor, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        squared = [tf.reduce_sum(tf.square(mirrored_gram(features[layer], features[layer], axis) - goal[(layer, axis)]))
                   for layer in layers for axis in axes]
        return tf.add_n(squared) / len(squared)

    return LossTerm(NAME, weight, fn, tuple(layers))


@hookimpl
def register_losses(job) -> list[LossTerm]:
    """Statistics mode: the mirrored cross-correlation term, matched to the style images."""
    options = SCHEMA.settings(job)
    if options is None or options["mode"] != STATISTICS:
        return []
    axes = tensor_axes(options["mirror"])
    layers = tuple(options["layers"])
    weight = options["weight"]
    if weight is None:
        weight = DEFAULT_RELATIVE_WEIGHT * job.spec.style_weight
    return [symmetry_term(weight, layers, axes, targets(job, layers, axes))]


# --- measuring ----------------------------------------------------------------------------------


def mirror_error(image: np.ndarray, mirror: str = LEFT_RIGHT) -> tuple[float, float]:
    """(mean, max) of |image - mirror image| over the mirrors, in grey levels of 8 bits."""
    image = np.asarray(image, np.float64)
    differences = [np.abs(image - np.flip(image, axis)) * 255.0 for axis in IMAGE_AXES[mirror]]
    return float(np.mean(differences)), float(np.max(differences))
