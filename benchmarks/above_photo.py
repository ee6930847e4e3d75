"""Renders above the photo's own resolution: do the scales still hand on, and does the result keep
the look of the same job at the photo's size?

Usage: python benchmarks/above_photo.py [--native 256] [--factor 4] [--iterations 100] [--pairs 0 1]

Each pair's photo and painting are first taken down to ``--native`` px (the long side), so a
render at ``--factor`` times that size is as far above the photo's resolution as a 4096 px print
of a 1024 px photo, at a fraction of the time. For each pair the script renders at the native size
and at the larger size (seed 1, defaults otherwise) and prints, per scale of the larger render, the
content weight it used, its first and last loss over the last loss of the scale before, and the
mean absolute difference between the larger result taken down to the native size and the native
render (how far the print strays from the job at the photo's size).
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from PIL import Image as PILImage  # noqa: E402

from styled import render  # noqa: E402
from styled.engine.job import load_job, relative_to  # noqa: E402
from styled.engine.spec import build_job_spec  # noqa: E402
from styled.io import images  # noqa: E402

IMAGES = Path(__file__).resolve().parents[2] / "shared" / "images"
PAIRS = (
    ("content/tubingen.jpg", "style/starry_night.jpg"),
    ("content/golden_gate.jpg", "style/the_scream.jpg"),
    ("content/hoovertowernight.jpg", "style/woman-with-hat-matisse.jpg"),
)


class WeightLog(logging.Handler):
    """Collects the content weight the built-in terms report for each scale above the photo."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def reduced(relative: str, long_side: int, folder: Path) -> Path:
    pixels = images.resize_long_side(images.load_image(IMAGES / relative).pixels, long_side)
    path = folder / f"{Path(relative).stem}_{long_side}.png"
    PILImage.fromarray((np.clip(pixels, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)).save(path)
    return path


def run(photo: Path, painting: Path, size: int, iterations: int):
    data = {"content": str(photo), "style": [str(painting)], "size": size, "iterations": iterations, "seed": 1}
    return render(load_job(build_job_spec(data, source="above_photo"), relative_to(Path.cwd())))


def per_scale(history: list[dict]) -> list[list[float]]:
    scales: dict[int, list[float]] = {}
    for entry in history:
        scales.setdefault(entry["scale"], []).append(entry["total"])
    return [scales[key] for key in sorted(scales)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--native", type=int, default=256)
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--pairs", type=int, nargs="+", default=[0, 1], help="indices into PAIRS")
    args = parser.parse_args()
    weights = WeightLog()
    logging.getLogger("styled.plugins.builtin.gatys").addHandler(weights)
    logging.getLogger("styled.plugins.builtin.gatys").setLevel(logging.INFO)
    with tempfile.TemporaryDirectory() as folder:
        for content, style in (PAIRS[index] for index in args.pairs):
            photo, painting = reduced(content, args.native, Path(folder)), reduced(style, args.native, Path(folder))
            own = run(photo, painting, args.native, args.iterations)
            weights.lines.clear()
            large = run(photo, painting, args.native * args.factor, args.iterations)
            height, width = own.image.shape[:2]
            drift = float(np.abs(images.resize_to(np.asarray(large.image, np.float32), width, height) - own.image).mean())
            print(f"\n{Path(content).stem} x {Path(style).stem}: {args.native} px photo and painting, rendered at "
                  f"{args.native * args.factor} px; taken down to {args.native} px it differs from the "
                  f"{args.native} px render by {drift:.4f} (mean absolute)", flush=True)
            for line in weights.lines:
                print(f"  {line}")
            scales = per_scale(large.history)
            for before, now in zip(scales, scales[1:]):
                print(f"  {len(now):4d} iterations: first {now[0] / before[-1]:5.1f}x, last {now[-1] / before[-1]:5.2f}x "
                      f"the last loss of the scale before", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
