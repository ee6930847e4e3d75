"""Does ``init: adain`` reach a given loss sooner than ``init: content``?

Usage: python3 benchmarks/warm_start.py [--size 256] [--scales 1] [--iterations 150] [--pairs 0 1 2 3]
                                        [--precision auto]

For each content/style pair, renders once from each start with the default settings otherwise
(L-BFGS, the default weights and precision) and records the loss of every iteration of the last
scale. The targets are the best losses ``init: content`` has reached after 25 %, 50 % and 100 %
of its iterations (the best, because the render returns its best image and L-BFGS sometimes
jumps up); for each start the script prints the iteration and the seconds (from the start of
the render, AdaIN pass included) at which the last scale first gets to each target, "-" if never.
"best" is each start's lowest loss. The AdaIN network and the optimiser's tf.function are warmed
up first, as in a running daemon.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from styled import render
from styled.engine import adain  # noqa: E402 - after the TensorFlow log level is set
from styled.engine.job import load_job, relative_to  # noqa: E402
from styled.engine.spec import build_job_spec  # noqa: E402
from styled.engine.types import Progress, RenderOptions  # noqa: E402

IMAGES = Path("/work/shared/images")
PAIRS = (
    ("content/tubingen.jpg", "style/starry_night.jpg"),
    ("content/golden_gate.jpg", "style/the_scream.jpg"),
    ("content/hoovertowernight.jpg", "style/woman-with-hat-matisse.jpg"),
    ("content/tubingen.jpg", "style/shipwreck.jpg"),
)
INITS = ("content", "adain")
TARGET_FRACTIONS = (0.25, 0.5, 1.0)


@dataclass
class Trace:
    """(iteration, seconds since the render started, loss) for each iteration of the last scale."""

    points: list[tuple[int, float, float]]

    def first_at_or_below(self, loss: float) -> tuple[int, float] | None:
        for iteration, seconds, value in self.points:
            if value <= loss:
                return iteration, seconds
        return None

    def best_after(self, fraction: float) -> float:
        """The lowest loss within the first ``fraction`` of the iterations."""
        return min(value for _, _, value in self.points[:max(1, round(fraction * len(self.points)))])


def run(content: str, style: str, init: str, args: argparse.Namespace) -> Trace:
    data = {"content": str(IMAGES / content), "style": [str(IMAGES / style)], "size": args.size,
            "scales": args.scales, "iterations": args.iterations, "init": init, "seed": 0,
            "precision": args.precision}
    job = load_job(build_job_spec(data, source="warm_start"), relative_to(Path.cwd()))
    last_scale = len(job.spec.scale_sizes())
    points: list[tuple[int, float, float]] = []

    def record(progress: Progress) -> None:
        if progress.scale == last_scale:
            points.append((progress.iteration, progress.elapsed, progress.loss))

    render(job, options=RenderOptions(on_progress=record))
    return Trace(points)


def describe(hit: tuple[int, float] | None) -> str:
    return "-" if hit is None else f"{hit[0]:>4} it {hit[1]:6.1f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--scales", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=150)
    parser.add_argument("--pairs", type=int, nargs="+", default=range(len(PAIRS)), help="indices into PAIRS")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()
    warm = argparse.Namespace(**{**vars(args), "iterations": 2})
    for init in INITS:
        run(*PAIRS[0], init, warm)
    print(f"size {args.size}, {args.scales} scale(s), {args.iterations} iterations, precision {args.precision}; "
          f"AdaIN network cached: {adain.load_network.cache_info().currsize} precision(s)")
    for content, style in (PAIRS[index] for index in args.pairs):
        traces = {init: run(content, style, init, args) for init in INITS}
        baseline = traces["content"]
        print(f"\n{Path(content).stem} x {Path(style).stem}: first loss "
              + ", ".join(f"{init} {traces[init].points[0][2]:.4g}" for init in INITS)
              + "; best " + ", ".join(f"{init} {traces[init].best_after(1.0):.4g}" for init in INITS)
              + "; last " + ", ".join(f"{init} {traces[init].points[-1][2]:.4g}" for init in INITS))
        for fraction in TARGET_FRACTIONS:
            target = baseline.best_after(fraction)
            cells = "   ".join(f"{init}: {describe(traces[init].first_at_or_below(target))}" for init in INITS)
            print(f"  loss <= {target:10.4g} ({fraction:>4.0%} of content's run)   {cells}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
