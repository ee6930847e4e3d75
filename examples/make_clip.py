"""Make examples/tubingen_walk.mp4: Tübingen seen by a camera that pans, zooms and turns, with a tone.

    python examples/make_clip.py

3 seconds at 12 frames per second, 320x180, made with styled.video.camera (the same virtual camera
the tests and benchmarks/video.py use, whose true optical flow is known) and encoded by styled.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from styled.io.images import load_image
from styled.video.camera import CameraMove, film
from styled.video.encode import write_clip

HERE = Path(__file__).resolve().parent
FRAMES, RATE, SIZE = 36, Fraction(12), (180, 320)
MOVE = CameraMove(pan=(3.0, 1.0), zoom=1.008, turn=0.15)
TONE_HERTZ = 220.0

if __name__ == "__main__":
    clip = film(load_image(HERE / "tubingen.jpg").pixels, SIZE, FRAMES, MOVE)
    write_clip(HERE / "tubingen_walk.mp4", clip.frames, RATE, tone=TONE_HERTZ)
    print(f"wrote {HERE / 'tubingen_walk.mp4'}")
