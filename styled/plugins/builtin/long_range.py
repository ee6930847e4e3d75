"""Long-range consistency: Gram matrices between feature maps and their shifted copies.

Berger & Memisevic, "Incorporating long-range consistency in CNN-based texture generation",
ICLR 2017, section 3: for a layer's activations F (H x W x C) and a shift δ, the cross-correlation
A(δ) = T(F)ᵀ T'(F), where T drops the last δ columns (rows) and T' the first δ, pairs every
feature with the one δ pixels to its right (below). Matching A(δ) of the image to A(δ) of the
style along x and along y keeps structures that repeat at distance δ (rows of bricks, grids of
windows) consistent, which the plain Gram matrix (δ = 0) cannot see.

Where we depart from the paper:

* Shifts are in feature-map pixels *at the job's final size* and shrink in proportion at the
  coarser scales (``round(δ · scale / size)``, at least 1), so a shift always spans the same
  fraction of the image; the paper optimised at one scale. In image pixels a shift at
  ``reluB_k`` spans δ · 2^(B-1).
* Shifts that would leave less than half of the feature map overlapping are skipped at that scale.
* A(δ) is normalised like styled's Gram matrix (divided by C times the overlap), so that the term
  weighs the same at every size, and the term is the mean over layers of the mean over shifts and
  the two directions of the squared Frobenius distance (the paper sums).
* The default layers and shifts are ours (chosen on textures/bricks.jpg and windows.jpg at
  256 px; docs/plugins.md shows the runs).

At print sizes the term tiles (``Tiling``): each tile adds F(p)ᵀF(p + δ) over its core positions p
whose partner lies in the feature map, and the count; the partner may lie beyond the core, so
the term's ``reach`` (δ times the layer's stride, for the largest shift) widens the tiles' halo.
The style images' statistics are summed over the same tiles.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from styled.engine.losses import blend_grams, tiled_sums
from styled.engine.types import LossTerm, Tiling, Window
from styled.nets.layers import block_of, stride_of, vgg_layer
from styled.plugins.hookspecs import hookimpl
from styled.plugins.schema import Option, OptionError, PluginSchema, number, optional
from styled.settings.rules import short

NAME = "long_range"
#: Feature-map shifts per layer at the final size. At 256 px they span 8-32 image pixels at
#: relu2_1 (4 px per 2 shift), 16-64 at relu3_1 and 32-128 at relu4_1: from a brick's height to
#: half the image.
DEFAULT_LAYERS: dict[str, list[int]] = {"relu2_1": [4, 8, 16], "relu3_1": [4, 8, 16], "relu4_1": [4, 8, 16]}
#: The term's weight relative to the job's style_weight when the job gives none. Texture of
#: bricks.jpg at 128 px, 150 iterations: row coherence 0.12 without the term, 0.21 at 1x, 0.25 at
#: 4x (the source's: 0.36), with the Gram loss no worse.
DEFAULT_RELATIVE_WEIGHT = 4.0
#: A shift must leave at least this fraction of the feature map overlapping, or it is skipped.
MIN_OVERLAP = 0.5
X_AXIS, Y_AXIS = 2, 1  # of a (1, H, W, C) activation
AXES = (X_AXIS, Y_AXIS)
#: VGG block of a layer name such as "relu3_1"; each block halves the resolution after it.
FIRST_BLOCK = 1


# --- options ------------------------------------------------------------------------------------


def _layer_shifts(value: Any) -> dict[str, list[int]]:
    """``{relu3_1: [4, 8], relu4_1: 4}``: each layer with one shift or a list of them (feature pixels)."""
    if not isinstance(value, Mapping) or not value:
        raise OptionError(f"must map layers to their shifts, such as {{relu3_1: [4, 8]}}, got {short(value)}")
    table = {}
    for layer, shifts in value.items():
        vgg_layer(layer)
        shifts = [shifts] if isinstance(shifts, int) and not isinstance(shifts, bool) else shifts
        if not isinstance(shifts, list) or not shifts or not all(_is_shift(s) for s in shifts):
            raise OptionError(f"the shifts of {layer} must be whole numbers of at least 1, got {short(shifts)}")
        table[str(layer)] = sorted(set(shifts))
    return table


def _is_shift(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


SCHEMA = PluginSchema(
    NAME,
    (
        Option("layers", DEFAULT_LAYERS,
               "VGG layers and their shifts in feature-map pixels at the final size, e.g. {relu3_1: [4, 8]}",
               _layer_shifts),
        Option("weight", None, "weight of the term; default: 4 x the job's style_weight", optional(number(0.0))),
    ),
    help="Berger & Memisevic's cross-correlations of shifted feature maps: keeps rows and grids aligned",
)


@hookimpl
def plugin_schema() -> PluginSchema:
    return SCHEMA


# --- the statistic ------------------------------------------------------------------------------


def cross_gram(left: tf.Tensor, right: tf.Tensor) -> tf.Tensor:
    """Aᵀ B / (C · N) of two (1, H, W, C) activations of the same shape; ``cross_gram(F, F)`` is gram(F)."""
    channels = tf.shape(left)[-1]
    a = tf.reshape(left, (-1, channels))
    b = tf.reshape(right, (-1, channels))
    return tf.matmul(a, b, transpose_a=True) / tf.cast(tf.size(a), tf.float32)


def shifted_gram(features: tf.Tensor, shift: int, axis: int) -> tf.Tensor:
    """A(δ) of Berger & Memisevic (2017), eq. 4: each feature against the one ``shift`` further along ``axis``."""
    if axis == X_AXIS:
        return cross_gram(features[:, :, :-shift], features[:, :, shift:])
    return cross_gram(features[:, :-shift], features[:, shift:])


def usable(shift: int, *lengths: int) -> bool:
    """Whether ``shift`` leaves at least MIN_OVERLAP of every length overlapping."""
    return all(length - shift >= MIN_OVERLAP * length for length in lengths)


def scaled_shift(shift: int, scale_size: int, final_size: int) -> int:
    """A shift given at the final size, at a coarser scale: the same fraction of the image, at least 1."""
    return max(1, round(shift * scale_size / final_size))


def feature_length(pixels: int, layer: str) -> int:
    """Feature-map length at ``layer`` of an image side of ``pixels`` (VGG pools 2x2 "SAME" per block)."""
    for _ in range(FIRST_BLOCK, block_of(layer)):
        pixels = math.ceil(pixels / 2)
    return pixels


# --- the term -----------------------------------------------------------------------------------

Plan = dict[str, list[tuple[int, int]]]  # layer -> [(shift, axis)]


def plan(layers: Mapping[str, Sequence[int]], output_shape: tuple[int, int], style_shapes: Sequence[tuple[int, int]],
         scale_size: int, final_size: int) -> Plan:
    """The (shift, axis) pairs of each layer that fit both the output and every style at this scale."""
    chosen: Plan = {}
    for layer, shifts in layers.items():
        pairs = []
        for shift in sorted({scaled_shift(s, scale_size, final_size) for s in shifts}):
            for axis in AXES:
                lengths = [feature_length(shape[axis - 1], layer) for shape in (output_shape, *style_shapes)]
                if usable(shift, *lengths):
                    pairs.append((shift, axis))
        if pairs:
            chosen[layer] = pairs
    return chosen


def _keys(chosen: Plan) -> list[tuple[str, int, int]]:
    return [(layer, shift, axis) for layer, pairs in chosen.items() for shift, axis in pairs]


def shifted_parts(features: tf.Tensor, shift: int, axis: int, window: Window, stride: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Σ F(p)ᵀ F(p + δ) over the window's core positions p whose partner p + δ lies in the map, and
    C times their number: A(δ) is the quotient of the totals over all tiles.

    The map's end along ``axis`` is the tile's (static) end; where the tile stops short of the
    image's edge the halo, widened by the term's reach, holds every partner, so the bound only
    cuts at the image's own edge."""
    spans = [list(span) for span in window.core_span(stride)]
    along = spans[axis - 1]
    along[1] = min(along[1], features.shape[axis] - shift)
    channels = features.shape[-1]
    if along[1] <= along[0]:  # no core position has its partner in this tile
        return tf.zeros((channels, channels)), tf.constant(0.0)
    (top, bottom), (left, right) = spans
    step = (shift, 0) if axis == Y_AXIS else (0, shift)
    here = tf.reshape(features[:, top:bottom, left:right], (-1, channels))
    there = tf.reshape(features[:, top + step[0]:bottom + step[0], left + step[1]:right + step[1]], (-1, channels))
    return tf.matmul(here, there, transpose_a=True), tf.cast(tf.size(here), tf.float32)


def tiling(chosen: Plan, targets: Mapping[tuple[str, int, int], tf.Tensor] | None = None) -> Tiling:
    """How the term tiles (and, without ``targets``, how its statistics are summed for the style images)."""
    keys = _keys(chosen)

    def partial(image: tf.Tensor, features: Mapping[str, tf.Tensor], window: Window, goal: tuple) -> tuple:
        return tuple(part for layer, shift, axis in keys
                     for part in shifted_parts(features[layer], shift, axis, window, stride_of(layer)))

    def combine(sums: tuple) -> tf.Tensor:
        current = {key: sums[2 * i] / sums[2 * i + 1] for i, key in enumerate(keys)}
        return distance(current, targets, chosen)

    return Tiling(partial, combine, reach=plan_reach(chosen))


def plan_reach(chosen: Plan) -> int:
    """How far the plan's largest shift reaches, in image pixels: δ positions at stride s reach δ·s."""
    return max(shift * stride_of(layer) for layer, shift, _ in _keys(chosen))


def style_targets(job, chosen: Plan) -> dict[tuple[str, int, int], tf.Tensor]:
    """The statistics of the job's style images at this scale, blended like the Gram targets; summed
    tile by tile when the scale is tiled."""
    partial, keys = tiling(chosen).partial, _keys(chosen)
    per_style = []
    for style in job.styles:
        sums = tiled_sums(job, style, tuple(chosen), lambda features, window: partial(style, features, window, ()))
        per_style.append({key: sums[2 * i] / sums[2 * i + 1] for i, key in enumerate(keys)})
    return {key: blend_grams([stats[key] for stats in per_style], job.style_weights) for key in per_style[0]}


def distance(current: Mapping[tuple[str, int, int], tf.Tensor], targets: Mapping[tuple[str, int, int], tf.Tensor],
             chosen: Plan) -> tf.Tensor:
    """Mean over layers of the mean over (shift, axis) of ‖A - A_target‖²."""
    per_layer = []
    for layer, pairs in chosen.items():
        squared = [tf.reduce_sum(tf.square(current[(layer, s, a)] - targets[(layer, s, a)])) for s, a in pairs]
        per_layer.append(tf.add_n(squared) / len(squared))
    return tf.add_n(per_layer) / len(per_layer)


def long_range_term(name: str, weight: float, chosen: Plan, targets) -> LossTerm:
    """A LossTerm matching the shifted Gram matrices of the image to ``targets``; it tiles."""
    return LossTerm.tiled(name, weight, tiling(chosen, targets), tuple(chosen))


def scale_plan(job, layers: Mapping[str, Sequence[int]]) -> Plan:
    """The plan for a ScaleJob: shifts scaled to the current scale and checked against its images."""
    sizes = job.spec.scale_sizes()
    style_shapes = [tuple(style.shape[1:3]) for style in job.styles]
    return plan(layers, job.shape, style_shapes, sizes[job.scale_index], sizes[-1])


@hookimpl
def tiling_reach(job) -> int | None:
    """The reach of the term ``register_losses`` makes for this scale, without its targets."""
    options = SCHEMA.settings(job)
    if options is None:
        return None
    chosen = scale_plan(job, options["layers"])
    return plan_reach(chosen) if chosen else None


@hookimpl
def register_losses(job) -> list[LossTerm]:
    """The long-range term, matched to the job's style images, when the job turns the plugin on."""
    options = SCHEMA.settings(job)
    if options is None:
        return []
    chosen = scale_plan(job, options["layers"])
    if not chosen:
        return []
    weight = options["weight"]
    if weight is None:
        weight = DEFAULT_RELATIVE_WEIGHT * job.spec.style_weight
    return [long_range_term(NAME, weight, chosen, style_targets(job, chosen))]


# --- measuring alignment ------------------------------------------------------------------------


def grey(image: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of an (H, W, 3) image, as float64."""
    return np.asarray(image, np.float64) @ np.array([0.299, 0.587, 0.114])


def autocorrelation(image: np.ndarray) -> np.ndarray:
    """Normalised autocorrelation of the luma, (2H-1, 2W-1), lag (0, 0) at the centre, 1 there.

    Computed without wrap-around and divided by the overlap of each lag, so long lags are not
    damped by the shrinking overlap.
    """
    values = grey(image)
    values = values - values.mean()
    height, width = values.shape
    size = (2 * height - 1, 2 * width - 1)
    spectrum = np.fft.rfft2(values, size)
    raw = np.fft.fftshift(np.fft.irfft2(spectrum * np.conj(spectrum), size))
    ones = np.fft.rfft2(np.ones_like(values), size)
    overlap = np.fft.fftshift(np.fft.irfft2(ones * np.conj(ones), size))
    correlation = raw / np.maximum(overlap, 1.0)
    return correlation / correlation[height - 1, width - 1]


def period(image: np.ndarray, axis: int, min_lag: int = 4) -> int:
    """The pattern's period along ``axis`` (0 rows, 1 columns): the highest autocorrelation peak after ``min_lag``.

    Searched up to a third of the image so that at least three periods fit.
    """
    correlation = autocorrelation(image)
    centre = np.array(correlation.shape) // 2
    line = correlation[centre[0]:, centre[1]] if axis == 0 else correlation[centre[0], centre[1]:]
    limit = max(min_lag + 1, len(line) // 3)
    return int(min_lag + np.argmax(line[min_lag:limit]))


def alignment_error(output: np.ndarray, source: np.ndarray, axis: int, repeats: int = 3) -> float:
    """Mean |ac_out - ac_src| at 1..``repeats`` times the source's period along ``axis``.

    Rows that drift or break lose their correlation at whole multiples of the period; aligned ones
    keep it. Both images should show the pattern at the same scale.
    """
    step = period(source, axis)
    out, src = autocorrelation(output), autocorrelation(source)
    return float(np.mean([abs(_lag(out, step * k, axis) - _lag(src, step * k, axis)) for k in range(1, repeats + 1)]))


def _lag(correlation: np.ndarray, lag: int, axis: int) -> float:
    centre = np.array(correlation.shape) // 2
    return float(correlation[centre[0] + lag, centre[1]] if axis == 0 else correlation[centre[0], centre[1] + lag])


def coherence(image: np.ndarray, axis: int) -> float:
    """Share of the luma variance explained by whole rows (axis 0) or columns (axis 1).

    Rows of bricks that stay straight across the whole image give their row means a large spread;
    rows that wave or break average out. 1 for perfect stripes, near 0 for unstructured noise.
    """
    values = grey(image)
    means = values.mean(axis=1 - axis)
    return float(means.var() / max(values.var(), 1e-12))
