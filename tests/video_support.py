"""Clips made in the test: a real photo through a moving virtual camera, so the true flow is known."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from conftest import shared_image

from styled.io.images import load_image
from styled.video.camera import CameraClip, CameraMove, film
from styled.video.encode import write_clip

#: Frame size (height, width) of the test clips: tiny, so a clip of a few frames renders in seconds.
CLIP_SIZE = (36, 48)


def photo(name: str = "content/tubingen.jpg") -> np.ndarray:
    return load_image(shared_image(name)).pixels


def camera_clip(frames: int = 5, size: tuple[int, int] = CLIP_SIZE, move: CameraMove = CameraMove()) -> CameraClip:
    return film(photo(), size, frames, move)


def make_clip(path: Path, frames: int = 5, *, size: tuple[int, int] = CLIP_SIZE, rate: Fraction = Fraction(24),
              tone: float | None = 440.0, move: CameraMove = CameraMove()) -> CameraClip:
    """Write a camera clip (with a tone for sound unless ``tone`` is None) and return its frames."""
    clip = camera_clip(frames, size, move)
    write_clip(path, clip.frames, rate, tone=tone)
    return clip
