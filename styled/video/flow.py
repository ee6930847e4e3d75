"""Optical flow between frames (OpenCV's DIS), warping, and Ruder et al.'s reliability weights.

A flow field here is (H, W, 2) float32: for each pixel p of one frame, the displacement (dx, dy) to
where p's content is in the other frame. ``warp(image, flow)`` samples ``image`` at p + flow(p), so
warping the previous result by the flow from this frame to the previous one brings it into this frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: OpenCV's DIS presets by the names ``flow_preset`` takes (docs/video.md measures each).
DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
#: Ruder, Dosovitskiy & Brox (GCPR 2016), section 3.2: the forward-backward check marks a pixel
#: disoccluded when |w̃ + ŵ|² > CONSISTENCY_SCALE·(|w̃|² + |ŵ|²) + CONSISTENCY_OFFSET ...
CONSISTENCY_SCALE = 0.01
CONSISTENCY_OFFSET = 0.5
#: ... and a motion boundary when |∇û|² + |∇v̂|² > BOUNDARY_SCALE·|ŵ|² + BOUNDARY_OFFSET.
BOUNDARY_SCALE = 0.01
BOUNDARY_OFFSET = 0.002


@dataclass(frozen=True)
class FramePair:
    """How an earlier frame maps into the current one: the flow back to it and the weights c."""

    backward: np.ndarray  # (H, W, 2): current frame -> earlier frame
    weights: np.ndarray  # (H, W) float32, 1 where the flow is reliable, 0 where it is not


def grey(frame: np.ndarray) -> np.ndarray:
    """(H, W) uint8 luminance of an (H, W, 3) float frame in [0, 1]: what DIS works on."""
    rgb = (np.clip(frame, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def optical_flow(source: np.ndarray, target: np.ndarray, preset: str) -> np.ndarray:
    """Dense flow from ``source`` to ``target`` (uint8 grey frames of one size)."""
    dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
    return dis.calc(source, target, None)


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` sampled at p + flow(p), bilinearly; positions outside it take the nearest edge pixel."""
    height, width = flow.shape[:2]
    columns, rows = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(np.ascontiguousarray(image, np.float32), columns + flow[..., 0], rows + flow[..., 1],
                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def reliability(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Ruder et al.'s weights c for warping the earlier frame into the current one: 0 at
    disocclusions (forward-backward check), at motion boundaries, and where the flow leaves the frame.

    ``backward`` is the flow current -> earlier (ŵ), ``forward`` earlier -> current (w).
    """
    forward_here = warp(forward, backward)  # w̃(p) = w(p + ŵ(p))
    mismatch = np.sum(np.square(forward_here + backward), axis=-1)
    scale = np.sum(np.square(forward_here), axis=-1) + np.sum(np.square(backward), axis=-1)
    consistent = mismatch <= CONSISTENCY_SCALE * scale + CONSISTENCY_OFFSET
    gradients = sum(np.square(derivative) for channel in (0, 1)
                    for derivative in np.gradient(backward[..., channel]))
    smooth = gradients <= BOUNDARY_SCALE * np.sum(np.square(backward), axis=-1) + BOUNDARY_OFFSET
    return (consistent & smooth & _inside(backward)).astype(np.float32)


def _inside(flow: np.ndarray) -> np.ndarray:
    """Pixels whose flow lands inside the frame (outside, the earlier frame never saw them)."""
    height, width = flow.shape[:2]
    columns, rows = np.meshgrid(np.arange(width), np.arange(height))
    x, y = columns + flow[..., 0], rows + flow[..., 1]
    return (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)


def frame_pair(current: np.ndarray, earlier: np.ndarray, preset: str) -> FramePair:
    """Flow both ways between two grey frames, and the reliability of warping ``earlier`` here."""
    backward = optical_flow(current, earlier, preset)
    forward = optical_flow(earlier, current, preset)
    return FramePair(backward, reliability(backward, forward))


def long_term_weights(weights: list[np.ndarray]) -> list[np.ndarray]:
    """Ruder et al.'s long-term weights (eq. 9): each earlier frame counts only where no nearer one
    was reliable, c_long(j) = max(c(j) − Σ_{k<j} c(k), 0); ``weights`` run nearest first."""
    taken = np.zeros_like(weights[0])
    result = []
    for weight in weights:
        result.append(np.maximum(weight - taken, 0.0))
        taken = taken + weight
    return result
