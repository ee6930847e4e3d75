"""How one scale's result becomes the next scale's starting image.

Enlarging a result by Lanczos gives a picture with no detail in the octave the new scale adds, and
the finest VGG layers' Gram matrices (relu1_1, relu2_1) and the content layer measure exactly
that octave: the first loss of the README example's 256 px scale was 65 times the 128 px scale's
last. So the enlarged result gets back the band it lacks, from the two images that have it at this
scale: the photo's own band (its Laplacian-pyramid level: the photo minus the photo taken down to
the previous scale and back up), which puts the photo's edges where they belong, and the style's
band, shifted by a random offset and tiled, which restores the painting's fine texture statistics
without imprinting the painting's layout. docs/performance.md measures each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from styled.io import images

#: How much of each band goes into the enlarged result (docs/performance.md: "Upsampling").
CONTENT_DETAIL = 1.0
STYLE_DETAIL = 1.0


@dataclass(frozen=True)
class Detail:
    """The amounts of the photo's and the style's missing band that an enlarged result gets back."""

    content: float = CONTENT_DETAIL
    style: float = STYLE_DETAIL


def missing_band(pixels: np.ndarray, coarse_shape: tuple[int, int]) -> np.ndarray:
    """What ``pixels`` lose when taken down to ``coarse_shape`` (height, width) and back up: the
    detail a result enlarged from that size lacks (one Laplacian-pyramid level)."""
    height, width = pixels.shape[:2]
    coarse = images.resize_to(pixels, coarse_shape[1], coarse_shape[0])
    return pixels - images.resize_to(coarse, width, height)


def tiled(band: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """``band`` repeated to cover ``shape`` (height, width), starting at a random offset."""
    height, width = shape
    band_height, band_width = band.shape[:2]
    reps = (math.ceil(height / band_height) + 1, math.ceil(width / band_width) + 1, 1)
    top, left = int(rng.integers(band_height)), int(rng.integers(band_width))
    return np.tile(band, reps)[top:top + height, left:left + width]


def style_band(styles: Sequence[np.ndarray], weights: Sequence[float], ratio: float, shape: tuple[int, int],
               rng: np.random.Generator) -> np.ndarray:
    """The styles' missing band at ``ratio`` (previous scale / this one), blended by ``weights`` at
    the energy of one band (independent bands average down by the root of their weights' squares)."""
    bands = []
    for style in styles:
        height, width = style.shape[:2]
        coarse = (max(1, round(height * ratio)), max(1, round(width * ratio)))
        bands.append(tiled(missing_band(style, coarse), shape, rng))
    blended = sum(weight * band for weight, band in zip(weights, bands))
    return blended / math.sqrt(sum(weight * weight for weight in weights))


def enlarge(previous: np.ndarray, shape: tuple[int, int], content: np.ndarray | None, styles: Sequence[np.ndarray],
            weights: Sequence[float], rng: np.random.Generator, detail: Detail = Detail()) -> np.ndarray:
    """``previous`` enlarged to ``shape`` (height, width) with the photo's and the styles' missing
    band added back, clipped to [0, 1]. ``content`` is the photo at ``shape`` (None for a texture);
    ``styles`` are the style images as this scale sizes them."""
    height, width = shape
    coarse = previous.shape[:2]
    image = images.resize_to(previous, width, height)
    if content is not None and detail.content:
        image += detail.content * missing_band(content, coarse)
    if styles and detail.style:
        image += detail.style * style_band(styles, weights, coarse[0] / height, shape, rng)
    return np.clip(image, 0.0, 1.0).astype(np.float32)
