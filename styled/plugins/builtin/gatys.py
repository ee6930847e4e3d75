"""The built-in terms of Gatys et al. (2015), registered like any plugin (datasette's DEFAULT_PLUGINS).

The maths is in styled.engine.losses; this module only chooses the terms a job's spec asks for.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from styled.engine.losses import blend_grams, content_term, gram, style_term, tv_term
from styled.engine.types import LossTerm, ScaleJob
from styled.plugins.hookspecs import hookimpl


def style_targets(job: ScaleJob, layers: Sequence[str]) -> dict[str, tf.Tensor]:
    """Blended Gram targets of the job's style images at the current scale."""
    per_style = [job.features(style, layers) for style in job.styles]
    return {
        name: blend_grams([gram(feats[name]) for feats in per_style], job.style_weights) for name in layers
    }


@hookimpl
def register_losses(job: ScaleJob) -> list[LossTerm]:
    """The built-in terms of Gatys et al.: content (when there is a content image), style and TV."""
    spec = job.spec
    layer_weights = dict(spec.style_layers)
    terms = [style_term(spec.style_weight, layer_weights, style_targets(job, tuple(layer_weights)))]
    if job.content is not None and spec.content_weight > 0:
        targets = job.features(job.content, spec.content_layers)
        terms.insert(0, content_term(spec.content_weight, spec.content_layers, targets))
    if spec.tv_weight > 0:
        terms.append(tv_term(spec.tv_weight))
    return terms
