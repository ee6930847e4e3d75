"""Spatial control: a style per region of the photo, with guided Gram matrices.

Gatys, Ecker, Bethge, Hertzmann & Shechtman, "Controlling Perceptual Factors in Neural Style
Transfer" (CVPR 2017), section 4 (spatial control). Each region r has a guide m_r (its mask, white
= the region) and a style; its term matches the guided Gram matrix of the image,

    G_r = Σ_p m_r(p)² F(p) F(p)ᵀ / (C · Σ_p m_r(p)²),

to the same guided Gram of its style image(s) (guided by the style's own ``guide`` when given,
else the whole painting). Dividing by the guide's mass makes G_r a weighted mean, so a small
region's style is as strong as a large one's, and with m = 1 it is the Gram of styled.engine.losses.

Where we depart from or choose within the paper:

* Guides reach each layer by the network's own 2x2 average pooling (the paper's first method,
  downsampling; its "inside" erosion of guides is not used): a feathered mask then blends two
  styles across its soft edge instead of leaving a seam.
* The job's own ``style:`` styles the rest of the photo (1 − Σ masks). An entry without ``style:``
  keeps the photo: instead of a style term it has a pixel term, the mean over the region of
  m·(x − photo)², weighted by its ``weight`` (default KEEP_WEIGHT), since the content term alone
  (deep features) lets colours and edges drift there.
* The built-in style term is switched off (the report's settings show ``style_weight: 0``); each
  region's term is named ``regions_N`` (``regions_rest`` for the rest) in the report's losses.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from styled.engine.gatys import style_side
from styled.engine.types import LossTerm, ScaleJob, Tiling, Window
from styled.io import images
from styled.nets.layers import stride_of
from styled.plugins.builtin.gatys import without_style_term
from styled.plugins.hookspecs import hookimpl
from styled.plugins.schema import Option, OptionError, PluginSchema
from styled.settings.fields import suggest
from styled.settings.rules import number, short

log = logging.getLogger(__name__)

NAME = "regions"
ENTRY_KEYS = ("mask", "color", "style", "style_blend", "weight", "guide")
#: A map's pixel belongs to a region whose colour is within this distance (0-255 per channel, RGB).
COLOR_TOLERANCE = 24.0
#: Below this mean guide the rest of the photo counts as covered: no term, and no style needed.
UNCOVERED_LEVEL = 0.005
REST = "rest"
HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
#: Weight of a style-less region's pixel term: at 1000 the region stayed within 0.13 grey levels
#: (0-255) of the photo on average in the 256 px demo (docs/plugins.md); the content term alone
#: let it drift 14.
KEEP_WEIGHT = 1000.0


# --- options ------------------------------------------------------------------------------------


def _colour(value: Any) -> tuple[int, int, int]:
    """``"#ff8000"`` or ``[255, 128, 0]``."""
    if isinstance(value, str) and HEX_COLOUR.fullmatch(value):
        return tuple(int(value[i:i + 2], 16) for i in (1, 3, 5))
    if isinstance(value, list) and len(value) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in value):
        return tuple(value)
    raise OptionError(f"a colour is '#rrggbb' or [r, g, b] with values 0-255, got {short(value)}")


def _file_list(value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(item, str) and item for item in items):
        raise OptionError(f"must be a file name or a list of file names, got {short(value)}")
    return list(items)


def _entry(index: int, raw: Any) -> dict[str, Any]:
    where = f"regions[{index}]"
    if not isinstance(raw, Mapping):
        raise OptionError(f"each region is a mapping such as {{mask: sky.png, style: starry.jpg}}, got {short(raw)}",
                          key=where)
    for key in raw:
        if key not in ENTRY_KEYS:
            raise OptionError(f"unknown key '{key}'", suggest(key, ENTRY_KEYS), key=f"{where}.{key}")
    entry = {key: raw.get(key) for key in ENTRY_KEYS}
    try:
        if entry["style"] is not None:
            entry["style"] = _file_list(entry["style"])
        if entry["guide"] is not None:
            entry["guide"] = _file_list(entry["guide"])
        if entry["color"] is not None:
            entry["color"] = list(_colour(entry["color"]))
        if entry["weight"] is not None:
            entry["weight"] = number(0.0)(entry["weight"])
        if entry["style_blend"] is not None:
            entry["style_blend"] = [number(0.0, exclusive_min=True)(item) for item in _blend_list(entry["style_blend"])]
    except OptionError as error:
        raise OptionError(error.message, error.hint, key=f"{where}.{error.key or ''}".rstrip(".")) from None
    _check_entry(where, entry)
    return entry


def _blend_list(value: Any) -> list:
    if not isinstance(value, list):
        raise OptionError(f"must be a list of positive numbers, one per style image, got {short(value)}",
                          key="style_blend")
    return value


def _check_entry(where: str, entry: dict[str, Any]) -> None:
    if (entry["mask"] is None) == (entry["color"] is None):
        raise OptionError("give the region either 'mask' (an image, white = the region) or 'color' (its colour "
                          "in 'map')", key=where)
    count = len(entry["style"] or [])
    for key in ("style_blend", "guide"):
        if entry[key] is not None and len(entry[key]) != count:
            raise OptionError(f"has {len(entry[key])} values for {count} style images", "give one per style image",
                              key=f"{where}.{key}")


def _entries(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise OptionError(f"must be a list of regions, each with a mask (or colour) and a style, got {short(value)}")
    return [_entry(index, raw) for index, raw in enumerate(value)]


def _check(options: dict[str, Any]) -> None:
    if options["regions"] is None:
        raise OptionError("no regions given", "add regions: [{mask: sky.png, style: starry.jpg}, ...]", key="regions")
    uses_colour = any(entry["color"] is not None for entry in options["regions"])
    if uses_colour and options["map"] is None:
        raise OptionError("regions given by colour need 'map', the colour-coded image", key="map")


SCHEMA = PluginSchema(
    NAME,
    (
        Option("regions", None, "a list of regions: each `{mask | color, style, style_blend, weight, guide}`",
               _entries, files=("mask", "style", "guide")),
        Option("map", None, "one colour-coded image of the photo's regions (entries then give `color`)", path=True),
    ),
    check=_check,
    help="a style per region of the photo, with guided Gram matrices (Gatys et al. 2017)",
    brings_styles=True,
)


@hookimpl
def plugin_schema() -> PluginSchema:
    return SCHEMA


# --- preparing the job --------------------------------------------------------------------------


@dataclass(frozen=True)
class Region:
    """One region: its guide on the photo, its style images with their own guides, its weight."""

    name: str
    mask: np.ndarray  # (H, W) float32 in [0, 1], at the content's resolution
    styles: tuple[np.ndarray, ...]  # none: the region keeps the photo
    guides: tuple[np.ndarray | None, ...]
    blend: tuple[float, ...]
    weight: float


@dataclass(frozen=True)
class Plan:
    """What prepare_job works out once: the styled regions, and the job's style layers."""

    regions: tuple[Region, ...]
    layers: tuple[tuple[str, float], ...]


@hookimpl
def prepare_job(job):
    """Load the masks and styles, add the rest of the photo as a region, turn off the built-in style."""
    options = SCHEMA.settings(job)
    if options is None:
        return None
    content = SCHEMA.content_of(job, "to place the regions on")
    shape = content.pixels.shape[:2]
    notes: list[str] = []
    colours = _load_map(options["map"], shape, notes) if options["map"] else None
    masks = [_region_mask(index, entry, shape, colours, notes) for index, entry in enumerate(options["regions"])]
    regions = [_styled(index, entry, mask, job) for index, (entry, mask) in enumerate(zip(options["regions"], masks))]
    rest = np.clip(1.0 - np.sum(masks, axis=0), 0.0, 1.0)
    if rest.mean() > UNCOVERED_LEVEL:
        regions.append(_rest(job, rest))
    plan = Plan(tuple(regions), job.spec.style_layers)
    job = dataclasses.replace(job, spec=without_style_term(job.spec), extras={**job.extras, NAME: plan})
    for note in notes:
        job = job.warn(note)
    return job


def _load_map(path: str, shape: tuple[int, int], notes: list[str]) -> np.ndarray:
    pixels = images.load_image(Path(path)).pixels
    return _fit(pixels, shape, path, "map", notes) * 255.0


def _fit(pixels: np.ndarray, shape: tuple[int, int], path: str, option: str, notes: list[str]) -> np.ndarray:
    """``pixels`` at the content's size: resized, with a note for the report, when they differ."""
    if pixels.shape[:2] == shape:
        return pixels
    note = (f"regions: {option} {Path(path).name} is {pixels.shape[1]} x {pixels.shape[0]}, the content "
            f"{shape[1]} x {shape[0]}: resized to fit")
    log.warning("%s", note)
    notes.append(note)
    return images.resize_to(pixels, shape[1], shape[0])


def _region_mask(index: int, entry: dict[str, Any], shape: tuple[int, int], colours: np.ndarray | None,
                 notes: list[str]) -> np.ndarray:
    if entry["mask"] is not None:
        pixels = images.load_image(Path(entry["mask"])).pixels.mean(axis=-1)
        mask, named = _fit(pixels, shape, entry["mask"], "mask", notes), Path(entry["mask"]).name
    else:
        distance = np.linalg.norm(colours - np.asarray(entry["color"], np.float32), axis=-1)
        mask, named = (distance <= COLOR_TOLERANCE).astype(np.float32), f"colour {entry['color']} of the map"
    if mask.max() <= 0.0:
        raise SCHEMA.error(f"region {index + 1} ({named}) covers nothing of the photo", "regions",
                           hint="a mask is white where its region is; check the file or the colour")
    return mask.astype(np.float32)


def _styled(index: int, entry: dict[str, Any], mask: np.ndarray, job) -> Region:
    """The region with its styles, or with none when it keeps the photo."""
    if not entry["style"]:
        weight = KEEP_WEIGHT if entry["weight"] is None else entry["weight"]
        return Region(f"keep_{index + 1}", mask, (), (), (), weight)
    styles = tuple(images.load_image(Path(path)).pixels for path in entry["style"])
    guides = tuple(images.load_image(Path(path)).pixels.mean(axis=-1) for path in entry["guide"] or []) \
        or (None,) * len(styles)
    weight = job.spec.style_weight if entry["weight"] is None else entry["weight"]
    return Region(str(index + 1), mask, styles, guides, _blend(entry["style_blend"], len(styles)), weight)


def _rest(job, rest: np.ndarray) -> Region:
    if not job.styles:
        raise SCHEMA.error(f"the regions leave {100 * rest.mean():.0f} % of the photo without a style", "regions",
                           hint="add 'style:' for the rest of the photo, or masks that cover all of it")
    return Region(REST, rest, tuple(style.pixels for style in job.styles), (None,) * len(job.styles),
                  job.spec.blend_weights(), job.spec.style_weight)


def _blend(weights: Sequence[float] | None, count: int) -> tuple[float, ...]:
    raw = list(weights or [1.0] * count)
    return tuple(w / sum(raw) for w in raw)


# --- the terms ----------------------------------------------------------------------------------


def pooled_guides(mask: np.ndarray, strides: Sequence[int]) -> dict[int, np.ndarray]:
    """The guide at each stride, by 2x2 average pooling with the network's "SAME" geometry (an odd
    side's last row or column is averaged alone)."""
    found, guide, stride = {}, np.asarray(mask, np.float32), 1
    for wanted in sorted(set(strides)):
        while stride < wanted:
            guide = _pool(guide)
            stride *= 2
        found[wanted] = guide
    return found


def _pool(guide: np.ndarray) -> np.ndarray:
    height, width = guide.shape
    padded = np.pad(guide, ((0, height % 2), (0, width % 2)), mode="edge")
    return padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2).mean(axis=(1, 3))


def guided_gram(features: tf.Tensor, guide: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Σ m² F Fᵀ and C·Σ m² of a (1, h, w, C) activation and its (1, h, w, 1) guide: their quotient
    is the guided Gram matrix (Gatys et al. 2017, section 4)."""
    weighted = tf.reshape(features * guide, (-1, tf.shape(features)[-1]))
    channels = tf.cast(tf.shape(features)[-1], tf.float32)
    return tf.matmul(weighted, weighted, transpose_a=True), tf.reduce_sum(tf.square(guide)) * channels


def _style_grams(job: ScaleJob, region: Region, layers: Sequence[str]) -> dict[str, tf.Tensor]:
    """The blended guided Grams of the region's style images at this scale."""
    side = style_side(job.spec, job.shape)
    per_style = []
    for pixels, guide in zip(region.styles, region.guides):
        style = images.resize_long_side(pixels, side)
        features = job.features(style[None], layers)
        mask = np.ones(style.shape[:2], np.float32) if guide is None else images.resize_to(guide, *style.shape[1::-1])
        guides = pooled_guides(mask, [stride_of(name) for name in layers])
        grams = {}
        for name in layers:
            product, count = guided_gram(features[name], tf.constant(guides[stride_of(name)][None, ..., None]))
            grams[name] = product / count
        per_style.append(grams)
    return {name: tf.add_n([w * grams[name] for w, grams in zip(region.blend, per_style)]) for name in layers}


def _core_slice(window: Window, stride: int) -> tuple[slice, slice]:
    """The rows and columns of a whole-image map at ``stride`` that the window's core answers for."""
    top, left, height, width = window.core
    rows = slice((window.top + top) // stride, -(-(window.top + top + height) // stride))
    columns = slice((window.left + left) // stride, -(-(window.left + left + width) // stride))
    return rows, columns


def region_term(job: ScaleJob, region: Region, layer_weights: Mapping[str, float]) -> LossTerm:
    """The guided Gram loss of one region, averaged over the style layers; tiled like the style term."""
    names = tuple(layer_weights)
    height, width = job.shape
    guides = pooled_guides(images.resize_to(region.mask, width, height), [stride_of(name) for name in names])
    goal_grams = _style_grams(job, region, names)

    def targets(window: Window) -> tuple:
        return tuple(tf.constant(guides[stride_of(name)][_core_slice(window, stride_of(name))][None, ..., None])
                     for name in names)

    def partial(image: tf.Tensor, features: Mapping[str, tf.Tensor], window: Window, goal: tuple) -> tuple:
        return tuple(part for name, guide in zip(names, goal)
                     for part in guided_gram(window.core_of(features[name], stride_of(name)), guide))

    def combine(sums: tuple) -> tf.Tensor:
        per_layer = [layer_weights[name] * tf.reduce_sum(tf.square(sums[2 * i] / sums[2 * i + 1] - goal_grams[name]))
                     for i, name in enumerate(names)]
        return tf.add_n(per_layer) / len(per_layer)

    return LossTerm.tiled(f"{NAME}_{region.name}", region.weight, Tiling(partial, combine, targets), names)


def keep_term(job: ScaleJob, region: Region) -> LossTerm:
    """Σ m·(x − photo)² / Σ m over the region's pixels and channels: the photo held in place."""
    height, width = job.shape
    mask = images.resize_to(region.mask, width, height)[..., None]
    photo = job.content.numpy()[0]

    def targets(window: Window) -> tuple:
        rows, columns = _core_slice(window, 1)
        return tf.constant(photo[rows, columns][None]), tf.constant(mask[rows, columns][None])

    def partial(image: tf.Tensor, features: Mapping[str, tf.Tensor], window: Window, goal: tuple) -> tuple:
        photo_core, mask_core = goal
        core = window.core_of(image)
        return tf.reduce_sum(mask_core * tf.square(core - photo_core)), 3.0 * tf.reduce_sum(mask_core)

    def combine(sums: tuple) -> tf.Tensor:
        return sums[0] / tf.maximum(sums[1], 1e-6)

    return LossTerm.tiled(f"{NAME}_{region.name}", region.weight, Tiling(partial, combine, targets))


@hookimpl
def register_losses(job: ScaleJob) -> list[LossTerm]:
    """One guided Gram term per styled region (and one for the rest of the photo); a pixel term for
    each region that keeps the photo."""
    plan = job.job.extras.get(NAME)
    if plan is None:
        return []
    layer_weights = dict(plan.layers)
    return [region_term(job, region, layer_weights) if region.styles else keep_term(job, region)
            for region in plan.regions if region.weight > 0]
