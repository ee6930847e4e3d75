"""Inpainting: fill a region of the content photo so that it blends with its surroundings.

Berger & Memisevic, "Incorporating long-range consistency in CNN-based texture generation",
ICLR 2017, section 4.3: only the pixels of the hole are optimised, so that the Gram matrices and
the long-range cross-correlations (styled.plugins.builtin.long_range) of the image match those of a source
texture. With the cross-correlations the filling continues regular structures (windows on a
grid, rows of bricks) across the hole; with Gram matrices alone it only matches their texture.

How it runs:

* ``prepare_job`` fills the hole with a structure-aware first guess (``first_fill``: the photo
  shifted by the offset whose surroundings match the hole's ring best, found over the whole photo
  by masked correlation, its seam evened out), then cuts the content down to a window around the
  hole (the hole's bounding box grown by ``context`` times its size on each side), rendered coarse
  to fine up to the content's own resolution, whatever ``size`` says. The paper also worked on
  such a crop (its ``*_init.jpg``).
* The first scale starts from that guess, and the Gram and long-range terms refine it;
  ``constrain_image`` puts the known pixels back after every step, so only the hole changes.
* ``finalize_image`` pastes the hole, resized to the content's resolution, into the full content:
  every pixel outside the mask is the input's own, and the output has the content's size.

Where we depart from the paper:

* The statistics of the image are taken over the hole and a band around it (the hole's mask at
  each layer's resolution, grown by one feature pixel), not over the whole crop, and those of the
  source over everything outside that band; both are means, so their sizes do not matter. A
  cross-correlation pair counts for the image when either end is in the hole, which is what ties
  the filling to the structures around it.
* By default the source is the content itself outside the hole (the paper used a separate crop,
  its ``*_ref.jpg``; pass one as ``source``).
* The paper starts from noise; a noise start leaves the optimiser to find the grid's phase, and it
  often settles a window half a period off with its mullions bent (NCC with the hidden truth 0.71
  on building.jpg). The shifted copy puts the structure in phase from the start (docs/plugins.md).
* The job's own content, style and TV terms are switched off (``content_weight``,
  ``style_weight`` and ``tv_weight`` read 0 in the report's settings, ``style_layers`` relu1_1)
  and replaced by ``inpainting_style``, ``inpainting_long_range`` and ``inpainting_tv``, which see
  the known pixels as constants: their gradient is zero outside the hole (see HoleOnly).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from styled.engine.losses import tv_loss
from styled.engine.types import LossTerm
from styled.io import images
from styled.nets.layers import block_of
from styled.plugins.builtin import long_range
from styled.plugins.builtin.gatys import without_style_term
from styled.plugins.hookspecs import hookimpl
from styled.settings.rules import short
from styled.plugins.schema import (
    Option,
    OptionError,
    PluginSchema,
    boolean,
    number,
    optional,
)

NAME = "inpainting"
#: The window optimised around the hole: its bounding box grown by this many times its size on each side.
DEFAULT_CONTEXT = 1.0
#: Mask images are white where to fill: a grey level above this half-way point counts as white.
MASK_THRESHOLD = 0.5
#: A pixel of the mask shrunk to a scale belongs to the hole above this level (resizing blurs the edge).
HOLE_LEVEL = 0.01
#: Feature pixels by which the hole's mask is grown at each layer: the band that ties it to its border.
BAND = 1
#: The anchor term's weight, as a multiple of the Gram term's: with 10 the refinement keeps the
#: copy's windows and mortar lines in place (building.jpg: NCC 0.92; 0.80 without an anchor,
#: docs/plugins.md).
DEFAULT_ANCHOR = 10.0
#: Default shifts of the long-range term, in feature pixels at the working size (see long_range).
DEFAULT_SHIFTS: dict[str, list[int]] = {"relu3_1": [4, 8, 16], "relu4_1": [2, 4, 8]}


# --- options ------------------------------------------------------------------------------------


def _region(value: Any) -> list[int]:
    if (not isinstance(value, list) or len(value) != 4
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise OptionError(f"must be [x, y, width, height] in whole pixels, got {short(value)}")
    x, y, width, height = value
    if x < 0 or y < 0 or width < 1 or height < 1:
        raise OptionError(f"needs x, y >= 0 and width, height >= 1, got {short(value)}")
    return list(value)


def _check(options: dict[str, Any]) -> None:
    if (options["mask"] is None) == (options["region"] is None):
        raise OptionError("give either 'mask' (an image, white = fill) or 'region' ([x, y, width, height])",
                          "for example region: [100, 80, 64, 64]", key="mask")


SCHEMA = PluginSchema(
    NAME,
    (
        Option("mask", None, "an image the size of the content, white where to fill (this or region)", path=True),
        Option("region", None, "the rectangle to fill, [x, y, width, height] in content pixels (this or mask)",
               optional(_region)),
        Option("source", None, "image to take the texture from; default: the content outside the hole",
               path=True),
        Option("long_range", True, "also match long-range cross-correlations (keeps grids aligned)", boolean),
        Option("context", DEFAULT_CONTEXT, "window around the hole, in hole sizes on each side",
               number(0.25, 8.0)),
        Option("weight", None, "weight of the Gram term; default: the job's style_weight (the long-range "
               "term gets long_range's 4 x that)", optional(number(0.0))),
        Option("anchor", DEFAULT_ANCHOR, "how firmly the hole keeps the structure of its first fill (the photo "
               "shifted by its best offset), as a multiple of the Gram term's weight; 0 lets the statistics "
               "alone decide", number(0.0)),
    ),
    check=_check,
    help="fills a region from the statistics around it (Berger & Memisevic 2017, section 4.3)",
    brings_styles=True,  # its statistics come from the photo (or `source`): no style image is needed
)


@hookimpl
def plugin_schema() -> PluginSchema:
    return SCHEMA



# --- preparing the job --------------------------------------------------------------------------


@dataclass(frozen=True)
class Hole:
    """What prepare_job works out once: the full content, the hole and the window around it."""

    content: Any  # styled.images.Image, at its own resolution
    mask: np.ndarray  # (H, W) bool, True = fill, at the content's resolution
    window: tuple[int, int, int, int]  # top, left, bottom, right in content pixels
    source: np.ndarray | None  # (h, w, 3) source image, or None for the content outside the hole
    weight: float
    long_range: bool
    layers: tuple[str, ...]  # the job's style layers: those of the Gram term
    tv_weight: float
    anchor: float = DEFAULT_ANCHOR  # the anchor term's weight over the Gram term's

    def window_mask(self) -> np.ndarray:
        top, left, bottom, right = self.window
        return self.mask[top:bottom, left:right]


def load_mask(options: Mapping[str, Any], content_shape: tuple[int, int]) -> np.ndarray:
    """The hole as a boolean (H, W) array at the content's resolution, from ``mask`` or ``region``."""
    height, width = content_shape
    if options["region"] is not None:
        x, y, w, h = options["region"]
        if x + w > width or y + h > height:
            raise SCHEMA.error(f"[{x}, {y}, {w}, {h}] reaches outside the {width} x {height} content", "region")
        mask = np.zeros(content_shape, bool)
        mask[y:y + h, x:x + w] = True
        return mask
    return _mask_from_file(Path(options["mask"]), content_shape)


def _mask_from_file(path: Path, content_shape: tuple[int, int]) -> np.ndarray:
    picture = images.load_image(path)
    grey = picture.pixels.mean(axis=-1)
    height, width = content_shape
    if grey.shape != content_shape:
        if abs(grey.shape[1] / grey.shape[0] - width / height) > 0.01:
            raise SCHEMA.error(f"the mask is {grey.shape[1]} x {grey.shape[0]}, the content {width} x {height}", "mask",
                         "make the mask the content's size (or at least its shape)")
        grey = images.resize_to(grey, width, height)
    mask = grey > MASK_THRESHOLD
    if not mask.any():
        raise SCHEMA.error("the mask has no white pixel: there is nothing to fill", "mask")
    return mask


def window_around(mask: np.ndarray, context: float) -> tuple[int, int, int, int]:
    """The hole's bounding box grown by ``context`` times its size on each side, inside the image."""
    rows, cols = np.nonzero(mask)
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    grow_y, grow_x = math.ceil(context * (bottom - top)), math.ceil(context * (right - left))
    height, width = mask.shape
    return max(0, top - grow_y), max(0, left - grow_x), min(height, bottom + grow_y), min(width, right + grow_x)


@hookimpl
def prepare_job(job):
    """Cut the content to the window around the hole and switch the built-in content and style terms off."""
    options = SCHEMA.settings(job)
    if options is None:
        return None
    content = SCHEMA.content_of(job, "to fill")
    mask = load_mask(options, content.pixels.shape[:2])
    top, left, bottom, right = window = window_around(mask, options["context"])
    source = images.load_image(Path(options["source"])).pixels if options["source"] else None
    spec = job.spec
    weight = spec.style_weight if options["weight"] is None else options["weight"]
    hole = Hole(content, mask, window, source, weight, options["long_range"],
                tuple(layer for layer, _ in spec.style_layers), spec.tv_weight, options["anchor"])
    try:
        guess = first_fill(content.pixels, mask)
    except NoOffset:  # the paper's way: the statistics alone, from noise
        job = job.warn("inpainting: the hole is too large for its photo to copy a first fill from; it is "
                       "filled from noise by the statistics alone (a smaller hole, or a larger photo, copies "
                       "its structure)")
        noise = np.random.default_rng(spec.seed).uniform(0.0, 1.0, content.pixels.shape).astype(np.float32)
        guess = np.where(mask[..., None], noise, content.pixels).astype(np.float32)
        hole = dataclasses.replace(hole, anchor=0.0)
    crop = images.Image(guess[top:bottom, left:right], None, content.path, content.bit_depth)
    size = max(bottom - top, right - left)  # the window at the photo's own resolution
    spec = without_style_term(spec, size=size, content_weight=0.0, tv_weight=0.0, init="content")
    # The style images are not used (the statistics come from the photo or `source`): none are kept,
    # so that no scale adds their detail into the hole.
    return dataclasses.replace(job, spec=spec, content=crop, styles=(), extras={**job.extras, NAME: hole})


def hole_of(job) -> Hole | None:
    """The Hole that prepare_job left on the job (a Job or a ScaleJob), or None."""
    owner = getattr(job, "job", job)
    return owner.extras.get(NAME)


# --- the image: start, constraint, final composite ----------------------------------------------


def mask_at(hole: Hole, shape: tuple[int, int]) -> np.ndarray:
    """The window's mask as float (h, w, 1) at ``shape``, soft at the edges when shrunk."""
    return images.resize_to(hole.window_mask().astype(np.float32), shape[1], shape[0])[..., None]


# --- the first fill: the photo shifted by its best offset ----------------------------------------

#: Width of the ring around the hole whose pixels choose the offset, as a share of the hole's size
#: (at least MIN_RING pixels): wide enough to see a period of the structure around the hole.
RING_FRACTION = 0.5
MIN_RING = 4
#: The seam's correction spreads into the hole over this share of the hole's size (a Gaussian).
SEAM_FRACTION = 1 / 6
#: Differences along the border larger than this (in [0, 1] levels) are edges of the structure, not
#: a change of light: they are cut to it, so that a dark window frame at the border does not smear
#: a shadow into the hole (building.jpg: NCC 0.89 -> 0.92, edge band 0.71 -> 0.82).
SEAM_LIMIT = 0.08


def first_fill(photo: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """``photo`` with each separate part of ``hole`` filled by the photo itself, shifted by that
    part's ``best_offset``, and the difference along its border spread smoothly into it
    (``even_seam``), so that the copy meets its surroundings without a step. NoOffset when a part
    has nowhere to copy from."""
    filled = photo.astype(np.float32, copy=True)
    for part in components(hole):
        ys, xs = np.nonzero(part)
        size = max(np.ptp(ys), np.ptp(xs)) + 1
        dy, dx = best_offset(photo, hole, max(MIN_RING, round(RING_FRACTION * size)), part)
        filled[ys, xs] = photo[ys + dy, xs + dx]
        filled = even_seam(filled, photo, part, (dy, dx), SEAM_FRACTION * size)
    return np.clip(filled, 0.0, 1.0)


class NoOffset(ValueError):
    """No shift takes a part of the hole and its ring onto known pixels inside the photo."""


def components(mask: np.ndarray) -> list[np.ndarray]:
    """The 8-connected parts of a boolean mask, each as a mask of its own (a union-find over the
    runs of each row, then over the runs that touch in the next row)."""
    runs: list[tuple[int, int, int]] = []  # (row, first column, end column)
    for row in range(mask.shape[0]):
        padded = np.concatenate([[False], mask[row], [False]])
        edges = np.flatnonzero(padded[1:] != padded[:-1])
        runs.extend((row, start, end) for start, end in zip(edges[::2], edges[1::2]))
    parent = list(range(len(runs)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    by_row: dict[int, list[int]] = {}
    for index, (row, _, _) in enumerate(runs):
        by_row.setdefault(row, []).append(index)
    for index, (row, start, end) in enumerate(runs):
        for other in by_row.get(row - 1, []):
            _, other_start, other_end = runs[other]
            if other_start <= end and start <= other_end:  # touching, diagonals included
                parent[root(index)] = root(other)
    parts: dict[int, np.ndarray] = {}
    for index, (row, start, end) in enumerate(runs):
        part = parts.setdefault(root(index), np.zeros_like(mask, dtype=bool))
        part[row, start:end] = True
    return list(parts.values())


def best_offset(photo: np.ndarray, hole: np.ndarray, ring: int, part: np.ndarray | None = None) -> tuple[int, int]:
    """The shift (dy, dx) whose pixels best match the ``ring`` pixels around ``part`` of the hole
    (default: all of it; least mean squared difference), among the shifts that take the part and
    its ring to known pixels inside the photo: on a facade, a whole number of window periods away.

    The sums over the ring for every shift are cross-correlations, computed at once by FFT (the
    masked-template matching of Kwatra et al. and of PatchMatch's first step, with one patch the
    size of the hole)."""
    part = hole if part is None else part
    height, width = hole.shape
    ring_mask = grow(part, ring) & ~hole
    shape = (2 * height, 2 * width)  # zero-padded: linear, not circular, correlation
    outside = np.ones(shape)
    outside[:height, :width] = hole
    blocked = _correlate((part | ring_mask).astype(np.float64), outside, shape)
    ring_weights = ring_mask.astype(np.float64)
    cost = np.zeros(shape)
    for channel in range(photo.shape[-1]):
        values = photo[..., channel].astype(np.float64)
        cost += _correlate(ring_weights, values ** 2, shape) - 2 * _correlate(ring_weights * values, values, shape)
    cost[blocked > 0.5] = np.inf
    if not np.isfinite(cost).any():
        raise NoOffset("no shift takes the hole and its ring onto known pixels")
    dy, dx = np.unravel_index(int(np.argmin(cost)), shape)
    return (int(dy) if dy < height else int(dy) - 2 * height), (int(dx) if dx < width else int(dx) - 2 * width)


def _correlate(kernel: np.ndarray, image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Σₚ kernel(p) · image(p + d) for every shift d (negative shifts wrap to the end), by FFT."""
    return np.fft.irfft2(np.conj(np.fft.rfft2(kernel, shape)) * np.fft.rfft2(image, shape), shape)


def even_seam(filled: np.ndarray, photo: np.ndarray, hole: np.ndarray, offset: tuple[int, int],
              spread: float) -> np.ndarray:
    """Add to the copied pixels the difference between the photo and the copy along the hole's
    border (each cut to ±SEAM_LIMIT), spread into the hole by a normalised Gaussian (a smooth
    membrane: a lit and a shaded part of the same facade then meet without a step)."""
    dy, dx = offset
    border = grow(hole, 1) & ~hole
    by, bx = np.nonzero(border)
    difference = np.zeros_like(filled)
    difference[by, bx] = np.clip(photo[by, bx] - photo[by + dy, bx + dx], -SEAM_LIMIT, SEAM_LIMIT)
    weight = _blur(border.astype(np.float64), spread)
    ys, xs = np.nonzero(hole)
    result = filled.copy()
    for channel in range(filled.shape[-1]):
        result[ys, xs, channel] += (_blur(difference[..., channel], spread) / np.maximum(weight, 1e-9))[ys, xs]
    return result


def _blur(values: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of an (H, W) array (zero outside it), by FFT."""
    height, width = values.shape
    fy, fx = np.fft.fftfreq(2 * height)[:, None], np.fft.rfftfreq(2 * width)[None, :]
    gain = np.exp(-2.0 * (np.pi * sigma) ** 2 * (fy ** 2 + fx ** 2))
    return np.fft.irfft2(np.fft.rfft2(values, (2 * height, 2 * width)) * gain, (2 * height, 2 * width))[:height, :width]


@hookimpl
def constrain_image(job, image):
    """Put the known pixels back: only the hole may change."""
    hole = hole_of(job)
    if hole is None:
        return None
    mask = mask_at(hole, job.shape)
    return (np.asarray(image)[0] * mask + job.content.numpy()[0] * (1.0 - mask))[None]


@hookimpl
def finalize_image(job, image):
    """Paste the hole, at the content's resolution, into the full content: outside it, the input's own pixels."""
    hole = hole_of(job)
    if hole is None:
        return None
    top, left, bottom, right = hole.window
    filled = images.resize_to(np.asarray(image, np.float32), right - left, bottom - top)
    result = hole.content.pixels.astype(np.float32, copy=True)
    region = result[top:bottom, left:right]
    inside = hole.window_mask()
    region[inside] = filled[inside]
    return result


# --- the loss -----------------------------------------------------------------------------------


def feature_mask(mask: np.ndarray, layer: str) -> np.ndarray:
    """The hole at ``layer``'s resolution: a feature pixel is in it if any of its pixels is, grown by BAND."""
    height, width = (long_range.feature_length(n, layer) for n in mask.shape)
    padded = np.zeros((height * _stride(layer), width * _stride(layer)), bool)
    padded[:mask.shape[0], :mask.shape[1]] = mask
    cells = padded.reshape(height, _stride(layer), width, _stride(layer)).any(axis=(1, 3))
    return grow(cells, BAND)


def _stride(layer: str) -> int:
    return 2 ** (block_of(layer) - 1)


def grow(cells: np.ndarray, steps: int) -> np.ndarray:
    """The boolean mask ``cells`` grown by ``steps`` pixels (4-connected)."""
    for _ in range(steps):
        grown = cells.copy()
        grown[1:] |= cells[:-1]
        grown[:-1] |= cells[1:]
        grown[:, 1:] |= cells[:, :-1]
        grown[:, :-1] |= cells[:, 1:]
        cells = grown
    return cells


def weighted_gram(left: tf.Tensor, right: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """Σ w · a bᵀ / (C · Σ w) over positions: a Gram (cross-)matrix of the weighted positions only."""
    channels = tf.shape(left)[-1]
    a = tf.reshape(left, (-1, channels)) * tf.reshape(weights, (-1, 1))
    b = tf.reshape(right, (-1, channels))
    total = tf.maximum(tf.reduce_sum(weights), 1.0)
    return tf.matmul(a, b, transpose_a=True) / (total * tf.cast(channels, tf.float32))


def pair_weights(weights: np.ndarray, shift: int, axis: int, either: bool) -> np.ndarray:
    """Weights of the pairs (x, x + shift): either end (image side) or both ends (source side) inside."""
    head, tail = (weights[:, :-shift], weights[:, shift:]) if axis == long_range.X_AXIS else (weights[:-shift],
                                                                                               weights[shift:])
    return np.maximum(head, tail) if either else head * tail


def shifted(features: tf.Tensor, shift: int, axis: int) -> tuple[tf.Tensor, tf.Tensor]:
    if axis == long_range.X_AXIS:
        return features[:, :, :-shift], features[:, :, shift:]
    return features[:, :-shift], features[:, shift:]


@dataclass(frozen=True)
class Statistic:
    """One statistic: (layer, shift, axis); shift 0 is the Gram matrix."""

    layer: str
    shift: int = 0
    axis: int = 0

    def of(self, features: Mapping[str, tf.Tensor], weights: np.ndarray, either: bool) -> tf.Tensor:
        values = features[self.layer]
        if self.shift == 0:
            return weighted_gram(values, values, tf.constant(weights, tf.float32))
        head, tail = shifted(values, self.shift, self.axis)
        pairs = pair_weights(weights, self.shift, self.axis, either)
        return weighted_gram(head, tail, tf.constant(pairs, tf.float32))


def statistics_plan(job, hole: Hole) -> tuple[list[Statistic], list[Statistic]]:
    """The Gram statistics (the job's style layers) and, when on, the long-range ones for this scale."""
    grams = [Statistic(layer) for layer in hole.layers]
    if not hole.long_range:
        return grams, []
    sizes = job.spec.scale_sizes()
    source_shapes = [] if hole.source is None else [_scaled_shape(hole.source.shape[:2], job)]
    chosen = long_range.plan(DEFAULT_SHIFTS, job.shape, source_shapes, sizes[job.scale_index], sizes[-1])
    return grams, [Statistic(layer, shift, axis) for layer, pairs in chosen.items() for shift, axis in pairs]


def _scaled_shape(shape: tuple[int, int], job) -> tuple[int, int]:
    """The source's shape at this scale: resized by the same factor as the content's window."""
    factor = job.shape[0] / job.job.content.pixels.shape[0]
    return max(1, round(shape[0] * factor)), max(1, round(shape[1] * factor))


def source_targets(job, hole: Hole, stats: Sequence[Statistic]) -> dict[Statistic, tf.Tensor]:
    """The statistics of the source: the content outside the hole's band, or the whole ``source`` image."""
    layers = sorted({s.layer for s in stats})
    if hole.source is None:
        image, mask = job.content, mask_at(hole, job.shape)[..., 0] > HOLE_LEVEL
        weights = {layer: 1.0 - feature_mask(mask, layer) for layer in layers}
    else:
        height, width = _scaled_shape(hole.source.shape[:2], job)
        image = tf.constant(images.resize_to(hole.source, width, height)[None])
        weights = {layer: np.ones([long_range.feature_length(n, layer) for n in (height, width)]) for layer in layers}
    features = job.features(image, layers)
    return {s: s.of(features, weights[s.layer].astype(np.float32), either=False) for s in stats}


def hole_weights(job, hole: Hole, layers: Sequence[str]) -> dict[str, np.ndarray]:
    mask = mask_at(hole, job.shape)[..., 0] > HOLE_LEVEL
    return {layer: feature_mask(mask, layer).astype(np.float32) for layer in layers}


class HoleOnly:
    """The image with its known pixels held constant, and its VGG features, once per traced step.

    The terms see the image through this, so their gradient is zero outside the hole: L-BFGS then
    only ever moves the hole, and its curvature pairs are not polluted by pixels that the
    constraint puts back after every step (which made it crawl). The features of the engine's own
    pass would carry gradient to every pixel, so the terms ask the engine for no layers and share
    one pass of their own.
    """

    def __init__(self, job, hole: Hole, layers: Sequence[str]):
        self.job = job
        self.layers = tuple(layers)
        mask = mask_at(hole, job.shape)[None]
        self.mask = tf.constant(mask, tf.float32)
        self.known = job.content * (1.0 - self.mask)
        self._image: tf.Tensor | None = None
        self._features: dict[str, tf.Tensor] = {}

    def image(self, image: tf.Tensor) -> tf.Tensor:
        return image * self.mask + self.known

    def features(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
        if image is not self._image:  # every term of one traced step gets the same tensor
            self._image, self._features = image, self.job.features(self.image(image), self.layers)
        return self._features


def inpainting_term(name: str, weight: float, stats: Sequence[Statistic], goal: Mapping[Statistic, tf.Tensor],
                    weights: Mapping[str, np.ndarray], hole_only: HoleOnly) -> LossTerm:
    """Mean over layers of the mean over that layer's statistics of ‖S(hole and band) - S(source)‖²."""
    by_layer: dict[str, list[Statistic]] = {}
    for stat in stats:
        by_layer.setdefault(stat.layer, []).append(stat)

    def fn(image: tf.Tensor, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        features = hole_only.features(image)
        per_layer = []
        for layer, group in by_layer.items():
            squared = [tf.reduce_sum(tf.square(s.of(features, weights[layer], either=True) - goal[s])) for s in group]
            per_layer.append(tf.add_n(squared) / len(squared))
        return tf.add_n(per_layer) / len(per_layer)

    return LossTerm(name, weight, fn)


def tv_term(weight: float, hole_only: HoleOnly) -> LossTerm:
    """The job's total variation, on the hole only."""
    return LossTerm(f"{NAME}_tv", weight, lambda image, features: tv_loss(hole_only.image(image)))


@hookimpl
def register_losses(job) -> list[LossTerm]:
    """The Gram and long-range terms of the hole and its band, matched to the source."""
    hole = hole_of(job)
    if hole is None:
        return []
    grams, shifted_stats = statistics_plan(job, hole)
    goal = source_targets(job, hole, grams + shifted_stats)
    layers = sorted({s.layer for s in grams + shifted_stats} | set(ANCHOR_LAYERS))
    weights = hole_weights(job, hole, layers)
    hole_only = HoleOnly(job, hole, layers)
    terms = [inpainting_term(f"{NAME}_style", hole.weight, grams, goal, weights, hole_only)]
    if shifted_stats:
        weight = long_range.DEFAULT_RELATIVE_WEIGHT * hole.weight
        terms.append(inpainting_term(f"{NAME}_long_range", weight, shifted_stats, goal, weights, hole_only))
    if hole.anchor > 0:
        terms.append(anchor_term(hole.anchor * hole.weight, job, weights, hole_only))
    if hole.tv_weight > 0:
        terms.append(tv_term(hole.tv_weight, hole_only))
    return terms


#: The layer whose activations hold the hole to its first fill: deep enough to leave the strokes
#: free, fine enough to keep a window where the copy put it.
ANCHOR_LAYERS = ("relu3_1",)


def anchor_term(weight: float, job, weights: Mapping[str, np.ndarray], hole_only: HoleOnly) -> LossTerm:
    """Mean squared difference, over the hole (and its band) at ANCHOR_LAYERS (``weights``: the
    hole's masks by layer), of the image's activations and those of the first fill: the refinement
    may fix the copy's seams and statistics, not move its structure."""
    targets = job.features(job.content, ANCHOR_LAYERS)

    def fn(image: tf.Tensor, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        features = hole_only.features(image)
        per_layer = []
        for layer in ANCHOR_LAYERS:
            mask = tf.constant(weights[layer][None, ..., None], tf.float32)
            squared = tf.square(features[layer] - targets[layer]) * mask
            per_layer.append(tf.reduce_sum(squared) / (tf.reduce_sum(mask) * tf.cast(tf.shape(squared)[-1], tf.float32)))
        return tf.add_n(per_layer) / len(per_layer)

    return LossTerm(f"{NAME}_anchor", weight, fn)
