"""Season transfer: move a photo to another season or time of day, and keep it a photo.

Berger & Memisevic, "Incorporating long-range consistency in CNN-based texture generation",
ICLR 2017, section 4.4 (season transfer): the content photo is stylised with a reference photo of a
similar scene in the other season, with the long-range term on, so that snow lies in rows where
leaves did. A Gatys et al. render with painting settings would also move the edges; this plugin
ships presets that keep the photo's structure:

* ``prepare_job`` applies a preset to every setting the job left at its default: content from
  relu4_2 with a higher weight, style from blocks 1-4 only (relu5_1 rearranges whole objects),
  weighted toward the shallow layers that carry colour and fine texture, more total variation;
  and it turns ``long_range`` on with short shifts (repeated structures of a scene, not a grid).
* ``register_losses`` adds the photorealism regulariser of Luan, Paris, Shechtman & Bala, "Deep
  Photo Style Transfer" (CVPR 2017, eq. 2): the matting Laplacian of the content photo (Levin,
  Lischinski & Weiss, "A Closed-Form Solution to Natural Image Matting", TPAMI 2008) charges every
  output channel for not being, in each 3 × 3 window, an affine function of the photo's colours.
  The style term still moves the colours; this term keeps the photo's edges and detail where they
  are, during the optimisation rather than after it.
* ``finalize_image`` can still run a guided filter (He, Sun & Tang, "Guided Image Filtering",
  TPAMI 2013) with the content photo as the guide (``detail`` blends it in, 0 by default now: the
  regulariser keeps the photo sharp, and the filter blurred it, docs/plugins.md).

Where we depart from Luan et al.: the Laplacian's quadratic form is computed without the matrix,
as the residual of the windows' best affine fits (box filters: the form Levin et al. minimise out
of a and b), a mean over windows and channels, so the weight means the same at every size; it
tiles. The paper's semantic segmentation is not used (the ``regions`` plugin pairs regions by
masks). The paper itself (Berger & Memisevic) shows season transfer with its long-range term only;
the presets are ours. The numbers are in docs/plugins.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from styled.engine.spec import JobSpec
from styled.engine.types import LossTerm, Tiling, Window
from styled.io import images
from styled.plugins.builtin import long_range
from styled.plugins.hookspecs import hookimpl
from styled.plugins.schema import Option, PluginSchema, boolean, integer, number, one_of, optional

NAME = "season_transfer"
PHOTOREALISM = "photorealism"
PHOTO, VIVID = "photo", "vivid"
#: Settings a preset gives a job that left them at their defaults.
PRESETS: dict[str, dict[str, Any]] = {
    PHOTO: {
        "content_layers": ("relu4_2",),
        "style_layers": (("relu1_1", 1.0), ("relu2_1", 1.0), ("relu3_1", 0.5), ("relu4_1", 0.25)),
        # 4 before the photorealism term kept the structure; with it, 2 lets the colours move as far
        # as plain Gatys moves them (tree: colour distance 12.4 against 12.8, docs/plugins.md).
        "content_weight": 2.0,
        "tv_weight": 4.0,
        "init": "content",
    },
    VIVID: {
        "content_layers": ("relu4_2",),
        "style_layers": (("relu1_1", 1.0), ("relu2_1", 1.0), ("relu3_1", 1.0), ("relu4_1", 0.5)),
        "content_weight": 2.0,
        "init": "content",
    },
}
#: Long-range shifts of the presets (feature pixels at the final size): a few cells of texture,
#: enough to keep snow on branches and lit windows in rows.
LONG_RANGE_LAYERS: dict[str, list[int]] = {"relu2_1": [4, 8], "relu3_1": [4, 8]}
#: Guided filter radius as a fraction of the output's long side (5 px at 256, 11 at 512). Wider
#: windows follow the content's structure more closely and keep less of what the render added:
#: tree_summer at 256 px, edge agreement 0.61 unfiltered, 0.87 at 5 px, 0.91 at 11 px; but at
#: 11 px the lights of city_night blur into the dark (docs/plugins.md).
RADIUS_FRACTION = 1 / 48
MIN_RADIUS = 1
#: Guided filter regulariser ε, He et al.'s 0.1²: smaller values copy more of the result's own strokes.
DEFAULT_EPSILON = 1e-2
#: Weight of the photorealism term. The term is a mean over windows (Luan et al.'s λ = 10⁴ is on
#: a sum), so its weight is large: at 256 px with the photo preset, tree_summer -> tree_winter
#: reached an edge agreement of 0.897 at 3e6 and 0.902 at 6e6, city_day -> city_night 0.76-0.78
#: (docs/plugins.md).
DEFAULT_PHOTOREALISM = 6e6
#: The matting Laplacian's windows: 3 x 3 (radius 1), and its regulariser ε, Levin et al.'s 1e-7
#: (it keeps the 3 x 3 colour covariance of a flat window invertible).
MATTING_RADIUS = 1
MATTING_EPSILON = 1e-7
LUMA = np.array([0.299, 0.587, 0.114])

SCHEMA = PluginSchema(
    NAME,
    (
        Option("preset", PHOTO, "photo: keep the photo's structure; vivid: more of the reference's texture",
               one_of(*PRESETS)),
        Option("long_range", True, "turn the long_range term on with the preset's shifts", boolean),
        Option("photorealism", DEFAULT_PHOTOREALISM, "weight of the matting-Laplacian term that keeps the "
               "output locally an affine function of the photo's colours (Luan et al. 2017); 0 turns it off",
               number(0.0)),
        Option("detail", 0.0, "0..1: how much of a guided filter's edge-preserving result to blend in afterwards",
               number(0.0, 1.0)),
        Option("radius", None, "guided filter radius in output pixels; default: long side / 48",
               optional(integer(1, 64))),
        Option("epsilon", DEFAULT_EPSILON, "guided filter regulariser; larger smooths more", number(1e-6, 1.0)),
    ),
    help="photorealistic season / time-of-day transfer from a reference photo (Berger & Memisevic 4.4)",
)


@hookimpl
def plugin_schema() -> PluginSchema:
    return SCHEMA



# --- presets ------------------------------------------------------------------------------------


def spec_defaults() -> dict[str, Any]:
    """Every JobSpec field's default value."""
    return {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
            for f in dataclasses.fields(JobSpec)}


def with_preset(spec, preset: Mapping[str, Any], long_range_on: bool):
    """``spec`` with the preset's settings wherever the job kept the default, and long_range on."""
    defaults = spec_defaults()
    changes = {key: value for key, value in preset.items() if getattr(spec, key) == defaults[key]}
    if long_range_on and long_range.NAME not in spec.plugins:
        changes["plugins"] = {**spec.plugins, long_range.NAME: {"layers": LONG_RANGE_LAYERS}}
    return dataclasses.replace(spec, **changes)


@hookimpl
def prepare_job(job):
    """Apply the preset to the settings the job left at their defaults."""
    options = SCHEMA.settings(job)
    if options is None:
        return None
    SCHEMA.content_of(job, "(the photo to change; the style is the reference photo)")
    return dataclasses.replace(job, spec=with_preset(job.spec, PRESETS[options["preset"]], options["long_range"]))


# --- the photorealism term (Luan et al. 2017) ---------------------------------------------------


def affine_residual(output: tf.Tensor, guide: tf.Tensor, radius: int = MATTING_RADIUS,
                    epsilon: float = MATTING_EPSILON) -> tf.Tensor:
    """Per window (the (2r+1)² ones that fit), summed over the output's channels: the mean squared
    residual of the best affine fit of the channel on the guide's colours, plus ε‖a‖²/|w|. Summed
    over windows this is Levin et al.'s vᵀLv / |w| (their eq. 12 is the minimum over a and b of
    exactly this), so its gradient is 2Lv / |w|.

    Computed from values centred in each window (the window's pixels as shifted copies of the
    image), never as E[x²] - E[x]²: in float32 that difference loses the small covariances of flat
    regions, the 3 × 3 covariance can turn indefinite, and the "residual" negative."""
    size = 2 * radius + 1
    height, width = output.shape[1] - 2 * radius, output.shape[2] - 2 * radius

    def members(values: tf.Tensor) -> list[tf.Tensor]:  # the window's pixels, one shifted copy each
        return [values[:, dy:dy + height, dx:dx + width] for dy in range(size) for dx in range(size)]

    guides = members(guide)
    guide_mean = tf.add_n(guides) / len(guides)
    centred = [g - guide_mean for g in guides]
    covariance = tf.add_n([c[..., :, None] * c[..., None, :] for c in centred]) / len(centred)
    inverse = tf.linalg.inv(covariance + (epsilon / len(centred)) * tf.eye(3, dtype=guide.dtype))
    residuals = []
    for channel in range(output.shape[-1]):
        values = members(output[..., channel:channel + 1])
        value_mean = tf.add_n(values) / len(values)
        offsets = [v - value_mean for v in values]
        joint = tf.add_n([c * o for c, o in zip(centred, offsets)]) / len(centred)  # (1, h, w, 3)
        slope = tf.squeeze(tf.matmul(inverse, joint[..., None]), -1)
        misfit = tf.add_n([tf.square(o - tf.reduce_sum(slope * c, -1, keepdims=True))
                           for c, o in zip(centred, offsets)]) / len(centred)
        residuals.append(misfit[..., 0] + (epsilon / len(centred)) * tf.reduce_sum(tf.square(slope), -1))
    return tf.add_n(residuals)


def photorealism_term(weight: float, photo: np.ndarray) -> LossTerm:
    """The mean over windows of ``affine_residual`` of the output on the photo. Tiled, each tile sums
    the windows centred on its core (a window reads ``MATTING_RADIUS`` pixels beyond its centre)."""
    guide = photo.astype(np.float32)

    def targets(window: Window) -> tuple:
        return (tf.constant(window.pixels(guide)[None]),)

    def partial(image: tf.Tensor, features: Mapping[str, tf.Tensor], window: Window, goal: tuple) -> tuple:
        residual = affine_residual(image, goal[0])  # windows centred at [r, size - r) of the tile
        top, left, height, width = window.core
        r = MATTING_RADIUS
        rows = (max(top - r, 0), max(min(top + height, window.height - r) - r, 0))
        columns = (max(left - r, 0), max(min(left + width, window.width - r) - r, 0))
        core = residual[:, rows[0]:rows[1], columns[0]:columns[1]]
        return tf.reduce_sum(core), tf.cast(tf.size(core), tf.float32)

    def combine(sums: tuple) -> tf.Tensor:
        return sums[0] / tf.maximum(sums[1], 1.0)

    return LossTerm.tiled(PHOTOREALISM, weight, Tiling(partial, combine, targets, reach=MATTING_RADIUS))


@hookimpl
def register_losses(job):
    """The photorealism term, at the last scale only: the coarser ones move the colours freely, as
    Luan et al.'s first pass without the regulariser does, and the last starts from their result."""
    options = SCHEMA.settings(job)
    if options is None or job.content is None or options["photorealism"] == 0:
        return []
    if job.scale_index < job.scale_count - 1:
        return []
    return [photorealism_term(options["photorealism"], job.content.numpy()[0])]


@hookimpl
def tiling_reach(job):
    options = job.plugin_options(NAME)
    return MATTING_RADIUS if options is not None else None


# --- the guided filter --------------------------------------------------------------------------


def box_mean(values: np.ndarray, radius: int) -> np.ndarray:
    """Mean over the (2r+1)² window around each pixel of an (H, W, ...) array, windows cut at the borders."""
    summed = _box_sum(values, radius)
    counts = _box_sum(np.ones(values.shape[:2] + (1,) * (values.ndim - 2)), radius)
    return summed / counts


def _box_sum(values: np.ndarray, radius: int) -> np.ndarray:
    for axis in (0, 1):
        values = _running_sum(values, radius, axis)
    return values


def _running_sum(values: np.ndarray, radius: int, axis: int) -> np.ndarray:
    length = values.shape[axis]
    padded = np.cumsum(values, axis=axis, dtype=np.float64)
    zero = np.zeros_like(np.take(padded, [0], axis=axis))
    padded = np.concatenate([zero, padded], axis=axis)
    upper = np.take(padded, np.minimum(np.arange(length) + radius + 1, length), axis=axis)
    lower = np.take(padded, np.maximum(np.arange(length) - radius, 0), axis=axis)
    return upper - lower


def guided_filter(guide: np.ndarray, source: np.ndarray, radius: int, epsilon: float) -> np.ndarray:
    """He et al. (2013) guided filter with a colour guide: ``source`` (H, W, 3) made locally affine in ``guide``.

    a_k = (Σ_k + εU)⁻¹ cov_k(I, p), b_k = mean_k(p) - a_kᵀ mean_k(I), q = mean(a)ᵀ I + mean(b).
    """
    guide = np.asarray(guide, np.float64)
    source = np.asarray(source, np.float64)
    mean_i = box_mean(guide, radius)
    mean_p = box_mean(source, radius)
    cov_ii = box_mean(guide[..., :, None] * guide[..., None, :], radius) - mean_i[..., :, None] * mean_i[..., None, :]
    cov_ip = box_mean(guide[..., :, None] * source[..., None, :], radius) - mean_i[..., :, None] * mean_p[..., None, :]
    a = np.linalg.solve(cov_ii + epsilon * np.eye(3), cov_ip)  # (H, W, 3 guide, 3 out)
    b = mean_p - np.einsum("hwi,hwio->hwo", mean_i, a)
    return np.einsum("hwi,hwio->hwo", guide, box_mean(a, radius)) + box_mean(b, radius)


def radius_for(shape: tuple[int, ...], radius: int | None) -> int:
    return radius if radius is not None else max(MIN_RADIUS, round(max(shape[:2]) * RADIUS_FRACTION))


@hookimpl
def finalize_image(job, image):
    """Edge-preserving detail transfer: the result made locally affine in the content photo."""
    options = SCHEMA.settings(job)
    if options is None or job.content is None or options["detail"] == 0:
        return None
    image = np.asarray(image, np.float32)
    height, width = image.shape[:2]
    guide = images.resize_to(job.content.pixels, width, height)
    filtered = guided_filter(guide, image, radius_for(image.shape, options["radius"]), options["epsilon"])
    detail = options["detail"]
    return np.clip((1.0 - detail) * image + detail * filtered, 0.0, 1.0).astype(np.float32)


# --- measuring ----------------------------------------------------------------------------------


def colour_distance(image: np.ndarray, reference: np.ndarray) -> float:
    """Fréchet distance between the RGB colour distributions (mean and covariance), in 8-bit levels.

    ‖μ₁ - μ₂‖² + Tr(Σ₁ + Σ₂ - 2(Σ₁Σ₂)^½), square-rooted: 0 for the same colours.
    """
    a = np.asarray(image, np.float64).reshape(-1, 3) * 255.0
    b = np.asarray(reference, np.float64).reshape(-1, 3) * 255.0
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = _sqrtm(_sqrtm(cov_a) @ cov_b @ _sqrtm(cov_a))
    value = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(cov_a + cov_b - 2.0 * root)
    return float(np.sqrt(max(value, 0.0)))


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def gradient_magnitude(image: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude of the luma of an (H, W, 3) image."""
    luma = np.asarray(image, np.float64) @ LUMA
    padded = np.pad(luma, 1, mode="edge")
    dx = (padded[:-2, 2:] + 2 * padded[1:-1, 2:] + padded[2:, 2:]) - (padded[:-2, :-2] + 2 * padded[1:-1, :-2]
                                                                      + padded[2:, :-2])
    dy = (padded[2:, :-2] + 2 * padded[2:, 1:-1] + padded[2:, 2:]) - (padded[:-2, :-2] + 2 * padded[:-2, 1:-1]
                                                                      + padded[:-2, 2:])
    return np.hypot(dx, dy)


def edge_agreement(image: np.ndarray, content: np.ndarray) -> float:
    """Pearson correlation of the two images' gradient magnitudes: 1 when the edges are the same."""
    a, b = gradient_magnitude(image).ravel(), gradient_magnitude(content).ravel()
    return float(np.corrcoef(a, b)[0, 1])
