"""palette: pull the result's colours toward a studio's palette.

A loss term that charges every pixel the squared distance to the nearest colour of a given
palette (a soft minimum, so the gradient reaches every colour near the pixel): a house style, a
print's inks, a poster's few colours. The style term still decides the strokes; this one decides
which colours they may take.

    plugins_dir: plugins
    plugins:
      palette: {colors: ["#1b2a49", "#3e6990", "#e9c46a", "#f4f1de"], weight: 20}

The term tiles (print sizes): it is a mean over pixels, so each tile adds its core's sum.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from styled import LossTerm, hookimpl
from styled.engine.types import Tiling, Window
from styled.plugins import Option, OptionError, PluginSchema, number, optional

NAME = "palette"
#: How soft the nearest-colour minimum is, in squared [0, 1] RGB distance: small enough to pick the
#: nearest colour, large enough that a pixel between two colours feels both.
SOFTNESS = 0.002
MAX_COLORS = 64


def _colors(value: Any) -> tuple[tuple[float, float, float], ...]:
    """``["#rrggbb", ...]`` or ``[[r, g, b], ...]`` (0-255) into RGB triples in [0, 1] (a tuple of
    them, which it also accepts: a rule must take its own output)."""
    if isinstance(value, tuple) and all(isinstance(color, tuple) and len(color) == 3 for color in value):
        return value
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_COLORS:
        raise OptionError(f"must be a list of 1 to {MAX_COLORS} colours such as \"#e9c46a\" or [233, 196, 106]")
    return tuple(_color(item) for item in value)


def _color(item: Any) -> tuple[float, float, float]:
    if isinstance(item, str) and len(item) == 7 and item.startswith("#"):
        try:
            return tuple(int(item[i:i + 2], 16) / 255.0 for i in (1, 3, 5))
        except ValueError:
            pass
    elif isinstance(item, list) and len(item) == 3 and all(isinstance(c, int) and 0 <= c <= 255 for c in item):
        return tuple(c / 255.0 for c in item)
    raise OptionError(f"{item!r} is not a colour: write \"#e9c46a\" or [233, 196, 106]")


def _check(options: dict[str, Any]) -> None:
    if options["colors"] is None:
        raise OptionError("the palette needs its colours", 'for example colors: ["#1b2a49", "#e9c46a"]',
                          key="colors")


SCHEMA = PluginSchema(
    NAME,
    (Option("colors", None, "the palette: a list of \"#rrggbb\" or [r, g, b] colours", optional(_colors)),
     Option("weight", 20.0, "how strongly colours are pulled to the palette", number(0.0))),
    check=_check,
    help="pulls the result's colours toward a given palette",
)


def palette_distance(pixels: tf.Tensor, palette: tf.Tensor) -> tf.Tensor:
    """Per pixel of (..., 3), a soft minimum over the palette (K, 3) of the squared RGB distance."""
    distances = tf.reduce_sum(tf.square(pixels[..., None, :] - palette), axis=-1)  # (..., K)
    return -SOFTNESS * tf.reduce_logsumexp(-distances / SOFTNESS, axis=-1)


def palette_term(weight: float, colors: tuple[tuple[float, float, float], ...]) -> LossTerm:
    palette = tf.constant(colors, tf.float32)

    def partial(image: tf.Tensor, features: Mapping[str, tf.Tensor], window: Window, goal: tuple) -> tuple:
        core = window.core_of(image)
        return tf.reduce_sum(palette_distance(core, palette)), tf.cast(tf.size(core) // 3, tf.float32)

    def combine(sums: tuple) -> tf.Tensor:
        return sums[0] / sums[1]

    return LossTerm.tiled(NAME, weight, Tiling(partial, combine))


@hookimpl
def plugin_schema() -> PluginSchema:
    return SCHEMA


@hookimpl
def register_losses(job):
    options = SCHEMA.settings(job)
    if options is None:
        return []
    return [palette_term(options["weight"], options["colors"])]
