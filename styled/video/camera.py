"""Test clips with a known answer: a still photo seen through a virtual camera that pans, zooms and
turns. Each frame is an affine view of the photo, so the true optical flow between any two frames is
known exactly; tests and benchmarks/video.py check flow, warping and temporal error against it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from styled.io.images import resize_to

#: Photo pixels per frame pixel at the first view (see _prefiltered).
SAMPLING = 1.5


@dataclass(frozen=True)
class CameraMove:
    """Per frame: the view's centre moves by ``pan`` (x, y) photo pixels, its scale is multiplied by
    ``zoom`` (above 1 zooms in) and it turns by ``turn`` degrees."""

    pan: tuple[float, float] = (2.0, 1.0)
    zoom: float = 1.01
    turn: float = 0.3
    #: The first view covers this share of the photo's shorter side.
    coverage: float = 0.6


@dataclass(frozen=True)
class CameraClip:
    """Frames of a virtual camera over a photo, and the affine map of each: frame pixel p (x, y)
    shows photo point ``matrices[t] @ (x, y, 1)``."""

    frames: tuple[np.ndarray, ...]
    matrices: tuple[np.ndarray, ...]

    def true_flow(self, current: int, earlier: int) -> np.ndarray:
        """(H, W, 2): for each pixel of frame ``current``, the displacement to the same photo point in
        frame ``earlier`` (the flow that warps frame ``earlier`` into frame ``current``)."""
        height, width = self.frames[0].shape[:2]
        columns, rows = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
        points = np.stack([columns, rows, np.ones_like(rows)], axis=-1)
        photo = points @ self.matrices[current].T
        back = _inverse(self.matrices[earlier])
        there = np.concatenate([photo, np.ones_like(rows)[..., None]], axis=-1) @ back.T
        return (there - points[..., :2]).astype(np.float32)


def film(photo: np.ndarray, size: tuple[int, int], frames: int, move: CameraMove = CameraMove()) -> CameraClip:
    """``frames`` views of ``photo`` (H, W, 3 float) at ``size`` (height, width) along ``move``."""
    height, width = size
    photo = _prefiltered(photo, size, move)
    photo_height, photo_width = photo.shape[:2]
    scale = move.coverage * min(photo_height / height, photo_width / width)
    centre = np.array([photo_width / 2, photo_height / 2])
    pictures, matrices = [], []
    for index in range(frames):
        matrix = _view(centre + index * np.array(move.pan), scale / move.zoom ** index, move.turn * index, size)
        matrices.append(matrix)
        pictures.append(cv2.warpAffine(np.ascontiguousarray(photo, np.float32), matrix, (width, height),
                                       flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                                       borderMode=cv2.BORDER_REFLECT).clip(0.0, 1.0))
    return CameraClip(tuple(pictures), tuple(matrices))


def _prefiltered(photo: np.ndarray, size: tuple[int, int], move: CameraMove) -> np.ndarray:
    """The photo shrunk (Lanczos) so that a view samples about ``SAMPLING`` photo pixels per frame
    pixel: like a lens, it does not alias fine detail the way point sampling a large photo would."""
    height, width = size
    scale = move.coverage * min(photo.shape[0] / height, photo.shape[1] / width)
    if scale <= SAMPLING:
        return photo
    shrink = SAMPLING / scale
    return resize_to(photo, max(1, round(photo.shape[1] * shrink)), max(1, round(photo.shape[0] * shrink)))


def _view(centre: np.ndarray, scale: float, degrees: float, size: tuple[int, int]) -> np.ndarray:
    """The 2x3 map from frame pixels to photo points of a view centred on ``centre``."""
    height, width = size
    angle = math.radians(degrees)
    rotation = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    offset = centre - rotation @ np.array([(width - 1) / 2, (height - 1) / 2])
    return np.hstack([rotation, offset[:, None]])


def _inverse(matrix: np.ndarray) -> np.ndarray:
    """The 2x3 map from photo points back to frame pixels."""
    return cv2.invertAffineTransform(matrix)
