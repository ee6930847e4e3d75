"""Scale control: the coarse structure of one painting with the fine strokes of another.

Gatys, Ecker, Bethge, Hertzmann & Shechtman, "Controlling Perceptual Factors in Neural Style
Transfer" (CVPR 2017), section 6 (scale control): the Gram matrices of the shallow layers describe
the fine scale of a style (brush strokes, texture), those of the deep layers its coarse scale
(large shapes, how strokes are arranged); taking each from a different painting mixes the two.

styled counts the style layers before ``split`` (default ``relu3_1``) as fine, and ``split`` and
the deeper ones as coarse: with the default style layers, ``relu1_1`` and ``relu2_1`` come from
``fine``, ``relu3_1``, ``relu4_1`` and ``relu5_1`` from ``coarse``. The built-in style term is
switched off (``style_weight`` reads 0 in the report's settings) and replaced by
``scale_control``, weighted by the job's ``style_weight`` unless ``weight`` says otherwise.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from styled.engine.gatys import style_side
from styled.engine.losses import style_term, tiled_grams
from styled.engine.types import LossTerm, ScaleJob
from styled.io import images
from styled.nets.layers import VGG_LAYER_NAMES, vgg_layer
from styled.plugins.builtin.gatys import without_style_term
from styled.plugins.hookspecs import hookimpl
from styled.plugins.schema import Option, OptionError, PluginSchema, number, optional

NAME = "scale_control"
DEFAULT_SPLIT = "relu3_1"

def _check(options: dict) -> None:
    for key in ("coarse", "fine"):
        if options[key] is None:
            raise OptionError(f"needs '{key}', a style image", "give both coarse: and fine:", key=key)


SCHEMA = PluginSchema(
    NAME,
    (
        Option("coarse", None, "the painting the coarse scale (deep layers) comes from", path=True),
        Option("fine", None, "the painting the fine scale (shallow layers) comes from", path=True),
        Option("split", DEFAULT_SPLIT, "the first style layer counted as coarse", vgg_layer),
        Option("weight", None, "weight of the term; default: the job's style_weight", optional(number(0.0))),
    ),
    check=_check,
    help="coarse style from one painting, fine style from another (Gatys et al. 2017)",
    brings_styles=True,
)


@hookimpl
def plugin_schema() -> PluginSchema:
    return SCHEMA


@dataclass(frozen=True)
class Split:
    """The two paintings, which style layers come from which, and the term's weight."""

    coarse: np.ndarray
    fine: np.ndarray
    fine_layers: tuple[str, ...]
    coarse_layers: tuple[str, ...]
    layer_weights: tuple[tuple[str, float], ...]
    weight: float


def split_layers(layers: list[str], split: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(fine, coarse): the layers before ``split`` in the network, and the rest."""
    first_coarse = VGG_LAYER_NAMES.index(split)
    fine = tuple(name for name in layers if VGG_LAYER_NAMES.index(name) < first_coarse)
    return fine, tuple(name for name in layers if name not in fine)


@hookimpl
def prepare_job(job):
    """Load both paintings and turn the built-in style term off."""
    options = SCHEMA.settings(job)
    if options is None:
        return None
    spec = job.spec
    fine, coarse = split_layers([name for name, _ in spec.style_layers], options["split"])
    if not fine or not coarse:
        raise SCHEMA.error(f"split '{options['split']}' leaves no {'fine' if not fine else 'coarse'} style layers",
                           "split", hint="choose a split between the first and the last of style_layers")
    plan = Split(images.load_image(Path(options["coarse"])).pixels, images.load_image(Path(options["fine"])).pixels,
                 fine, coarse, spec.style_layers,
                 spec.style_weight if options["weight"] is None else options["weight"])
    return dataclasses.replace(job, spec=without_style_term(spec), extras={**job.extras, NAME: plan})


@hookimpl
def register_losses(job: ScaleJob) -> list[LossTerm]:
    """A style term whose fine layers match ``fine``'s Grams and coarse layers ``coarse``'s."""
    plan = job.job.extras.get(NAME)
    if plan is None:
        return []
    side = style_side(job.spec, job.shape)
    targets = {}
    for pixels, layers in ((plan.fine, plan.fine_layers), (plan.coarse, plan.coarse_layers)):
        style = images.resize_long_side(pixels, side)
        targets.update(tiled_grams(job, tf.constant(style[None], tf.float32), layers))
    term = style_term(plan.weight, dict(plan.layer_weights), targets)
    return [dataclasses.replace(term, name=NAME)]
