"""Seconds per AdaIN image at 256, 512 and 1024 px, split into encoder, AdaIN and decoder.

Usage: python3 benchmarks/adain_speed.py [--sizes 256 512 1024] [--repeats 3] [--precisions float32 bfloat16]

Content and style are square (N x N, the worst case for a given long side): tubingen.jpg and
starry_night.jpg. Each configuration is warmed up once (weights loaded, tf.functions traced), then
timed ``--repeats`` times; the medians are printed. "encoder" covers both images (content and
style), "adain" the statistics and the normalisation, "decoder" the decoder and the copy back to
numpy. For bfloat16 the last columns give the pixel error against float32 at the same size, in
1/255 steps (max and mean over all pixels and channels).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402 - after the TensorFlow log level is set

from styled.engine import adain
from styled.io import images  # noqa: E402

#: The example images the repository ships; --content and --style take others.
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CONTENT = EXAMPLES / "tubingen.jpg"
STYLE = EXAMPLES / "starry_night.jpg"
DEFAULT_SIZES = (256, 512, 1024)
DEFAULT_PRECISIONS = ("float32", "bfloat16")
LEVELS = 255


def square(path: Path, side: int) -> np.ndarray:
    pixels = images.load_image(path).pixels
    return images.resize_to(pixels, side, side)


def timed_pass(network: adain.AdainNetwork, content: np.ndarray, style: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    """One stylisation, timed by stage; ``.numpy()`` waits for each stage to finish."""
    start = time.perf_counter()
    content_features = network.encode(content[None])
    style_features = network.encode(style[None])
    content_features.numpy(), style_features.numpy()
    encoded = time.perf_counter()
    features = adain.adaptive_instance_norm(content_features, adain.feature_statistics(style_features))
    features.numpy()
    normalised = time.perf_counter()
    image = np.clip(network.decode(features).numpy()[0], 0.0, 1.0)
    decoded = time.perf_counter()
    return {"encoder": encoded - start, "adain": normalised - encoded, "decoder": decoded - normalised}, image


def measure(precision: str, side: int, repeats: int, content_path: Path = CONTENT,
            style_path: Path = STYLE) -> tuple[dict[str, float], np.ndarray]:
    network = adain.load_network(precision)
    content, style = square(content_path, side), square(style_path, side)
    timed_pass(network, content, style)  # warm-up: traces the tf.functions at this size
    runs = [timed_pass(network, content, style) for _ in range(repeats)]
    medians = {stage: statistics.median(run[0][stage] for run in runs) for stage in runs[0][0]}
    medians["total"] = sum(medians.values())
    return medians, runs[-1][1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=DEFAULT_SIZES)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precisions", nargs="+", default=DEFAULT_PRECISIONS)
    parser.add_argument("--content", type=Path, default=CONTENT, help="content image (default: the example)")
    parser.add_argument("--style", type=Path, default=STYLE, help="style image (default: the example)")
    args = parser.parse_args()
    print(f"{'precision':<9} {'size':>5} {'encoder':>8} {'adain':>7} {'decoder':>8} {'total s':>8}"
          f" {'max err':>8} {'mean err':>9}")
    baseline: dict[int, np.ndarray] = {}
    for precision in args.precisions:
        for side in args.sizes:
            times, image = measure(precision, side, args.repeats, args.content, args.style)
            if precision == "float32":
                baseline[side] = image
            error = np.abs(image - baseline[side]) * LEVELS if side in baseline else None
            errors = f" {error.max():8.2f} {error.mean():9.3f}" if error is not None and precision != "float32" else ""
            print(f"{precision:<9} {side:>5} {times['encoder']:8.3f} {times['adain']:7.3f} {times['decoder']:8.3f}"
                  f" {times['total']:8.3f}{errors}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
