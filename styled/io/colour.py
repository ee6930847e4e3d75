"""Colour spaces for luminance-only transfer (Gatys et al. 2016, "Preserving Color in Neural
Artistic Style Transfer", arXiv:1606.05897)."""

from __future__ import annotations

import numpy as np

from styled.io.images import resize_to

#: NTSC 1953 RGB -> YIQ, the space Gatys et al. (2016), "Preserving Color in Neural Artistic
#: Style Transfer" (arXiv:1606.05897), section 2.2, use for luminance-only transfer.
RGB_TO_YIQ = np.array(
    [
        [0.299, 0.587, 0.114],
        [0.5959, -0.2746, -0.3213],
        [0.2115, -0.5227, 0.3112],
    ],
    dtype=np.float64,
)
RGB_TO_YIQ.setflags(write=False)
#: The exact inverse, so that a round trip returns the input (published inverses are rounded).
YIQ_TO_RGB = np.linalg.inv(RGB_TO_YIQ)
YIQ_TO_RGB.setflags(write=False)
#: Below this standard deviation a luminance is flat; matching then only shifts the mean.
FLAT_STD = 1e-6


def rgb_to_yiq(pixels: np.ndarray) -> np.ndarray:
    """RGB -> YIQ (NTSC 1953): Y is luminance, I and Q are chroma."""
    return (pixels @ RGB_TO_YIQ.T).astype(np.float32)


def yiq_to_rgb(yiq: np.ndarray) -> np.ndarray:
    """YIQ -> RGB, the exact inverse of :func:`rgb_to_yiq` (not clipped)."""
    return (yiq @ YIQ_TO_RGB.T).astype(np.float32)


def preserve_colors(result: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Keep the result's luminance and the content's chroma (I, Q), clipped to [0, 1].

    Gatys et al. (2016), "Preserving Color in Neural Artistic Style Transfer", section 2.2
    (luminance-only transfer) in YIQ. The content is resized to the result when they differ.
    """
    if content.shape[:2] != result.shape[:2]:
        content = resize_to(content, result.shape[1], result.shape[0])
    luminance = rgb_to_yiq(result)[..., :1]
    chroma = rgb_to_yiq(content)[..., 1:]
    return np.clip(yiq_to_rgb(np.concatenate([luminance, chroma], axis=-1)), 0.0, 1.0)


def match_luminance(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The style's luminance moved to the content's mean and spread, as grey RGB in [0, 1].

    Gatys et al. (2016), section 2.2: L_S' = (sigma_C / sigma_S) (L_S - mu_S) + mu_C, so that
    luminance-only transfer does not pull the content's brightness towards the style's.
    """
    style_y = rgb_to_yiq(style)[..., 0]
    content_y = rgb_to_yiq(content)[..., 0]
    spread = content_y.std() / style_y.std() if style_y.std() > FLAT_STD else 1.0
    matched = (style_y - style_y.mean()) * spread + content_y.mean()
    return np.repeat(np.clip(matched, 0.0, 1.0)[..., None], 3, axis=-1).astype(np.float32)
