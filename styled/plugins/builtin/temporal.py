"""The temporal term of Ruder, Dosovitskiy & Brox, "Artistic style transfer for videos" (GCPR 2016).

Built in, like the Gatys terms: it acts only on a video frame, whose job carries
``extras["temporal"]`` (a ``TemporalTargets`` that styled.video computes from the optical flow).
It adds the temporal term and starts each scale from the previous result warped into this frame,
where the flow is reliable (Ruder et al., section 3.1, "initialization").
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from styled.engine.losses import temporal_term
from styled.engine.types import LossTerm, ScaleJob, TemporalTargets, Window
from styled.io.images import resize_to
from styled.plugins.hookspecs import hookimpl

#: The key of ``Job.extras`` that holds a frame's ``TemporalTargets``.
EXTRA = "temporal"


def targets_of(job: ScaleJob) -> TemporalTargets | None:
    """The frame's temporal targets, or None for a still (or the first frame of a clip)."""
    return job.job.extras.get(EXTRA)


def at_scale(job: ScaleJob, targets: TemporalTargets) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each warped result and its weights (H, W, 1), resized to the scale being optimised."""
    height, width = job.shape
    return [(resize_to(warped, width, height), resize_to(weights, width, height)[..., None])
            for warped, weights in zip(targets.warped, targets.weights)]


@hookimpl
def register_losses(job: ScaleJob) -> list[LossTerm]:
    """The temporal term, for a video frame with earlier results to be held to."""
    targets = targets_of(job)
    if targets is None or job.spec.temporal_weight == 0:
        return []
    pairs = at_scale(job, targets)

    def window_targets(window: Window) -> tuple:
        top, left, height, width = window.core

        def core(array: np.ndarray) -> tf.Tensor:
            return tf.constant(window.pixels(array)[None, top:top + height, left:left + width], tf.float32)

        return tuple(core(array) for pair in pairs for array in pair)

    return [temporal_term(job.spec.temporal_weight, window_targets)]


@hookimpl
def initial_image(job: ScaleJob, image: tf.Tensor) -> np.ndarray | None:
    """Start from the previous result warped into this frame, and from ``image`` where the flow is
    unreliable (Ruder et al. fall back to the content frame there; ``init`` chooses here)."""
    targets = targets_of(job)
    if targets is None:
        return None
    warped, weights = at_scale(job, targets)[0]
    start = np.asarray(image, np.float32)[0]
    return (weights * warped + (1.0 - weights) * start)[None]
