"""The built-in terms of Gatys et al. (2015), registered like any plugin (datasette's DEFAULT_PLUGINS).

The maths is in styled.engine.losses; this module only chooses the terms a job's spec asks for.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence

import tensorflow as tf

from styled.engine.losses import blend_grams, content_term, mean_square, style_term, tiled_grams, tv_term
from styled.engine.spec import JobSpec
from styled.engine.types import LossTerm, ScaleJob, Window
from styled.nets.layers import stride_of
from styled.plugins.hookspecs import hookimpl

log = logging.getLogger(__name__)


def style_targets(job: ScaleJob, layers: Sequence[str]) -> dict[str, tf.Tensor]:
    """Blended Gram targets of the job's style images at the current scale."""
    per_style = [tiled_grams(job, style, layers) for style in job.styles]
    return {name: blend_grams([grams[name] for grams in per_style], job.style_weights) for name in layers}


def content_weight(job: ScaleJob) -> float:
    """``content_weight``, kept in balance with the style above the photo's own resolution.

    Enlarged beyond its detail, a photo's deep activations grow (relu4_2's mean square of a
    1024 px photo: 0.72 at its own size, 7.7 at 2048 px), and the content term with them, so a
    print would lean ever more to the photo than the same job at the photo's size. Above that size
    the weight is therefore scaled by the photo's activation energy at its own size over its energy
    at this scale; at or below it, it is ``content_weight`` as given (docs/print-size.md).
    """
    weight, layers = job.spec.content_weight, job.spec.content_layers
    photo = job.job.content.pixels
    if max(job.shape) <= max(photo.shape[:2]):
        return weight
    own = mean_square(job, tf.constant(photo[None], tf.float32), layers)
    here = mean_square(job, job.content, layers)
    log.info("content weight at %dx%d: %.3g (the photo's energy at its own %dx%d over this scale's: %.3g)",
             job.shape[1], job.shape[0], weight * own / here, photo.shape[1], photo.shape[0], own / here)
    return weight * own / here


def content_targets(job: ScaleJob, layers: Sequence[str]) -> Callable[[Window], tuple]:
    """The content photo's activations at a window's core positions, one per layer."""

    def targets(window: Window) -> tuple:
        features = job.features(window.crop(job.content), layers)
        return tuple(window.core_of(features[name], stride_of(name)) for name in layers)

    return targets


#: The built-in style term cannot be unregistered: with weight 0 and one shallow layer it costs nothing.
QUIET_STYLE_LAYERS = (("relu1_1", 1.0),)


def without_style_term(spec: JobSpec, **changes) -> JobSpec:
    """``spec`` with the built-in style term switched off (and ``changes``), for a plugin that puts
    its own style terms in its place (inpainting, regions, scale_control); the report's settings
    then read ``style_weight: 0``."""
    return dataclasses.replace(spec, style_weight=0.0, style_layers=QUIET_STYLE_LAYERS, **changes)


@hookimpl
def register_losses(job: ScaleJob) -> list[LossTerm]:
    """The built-in terms of Gatys et al.: content (when there is a content image), style (when the job
    has style images of its own; a plugin may bring them instead) and TV."""
    spec = job.spec
    layer_weights = dict(spec.style_layers)
    terms = [style_term(spec.style_weight, layer_weights, style_targets(job, tuple(layer_weights)))] if job.styles else []
    if job.content is not None and spec.content_weight > 0:
        terms.insert(0, content_term(content_weight(job), spec.content_layers, content_targets(job, spec.content_layers)))
    if spec.tv_weight > 0:
        terms.append(tv_term(spec.tv_weight))
    return terms
