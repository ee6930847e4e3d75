"""Engine speed: seconds per L-BFGS iteration, its ratio to a bare VGG pass, loss after a budget, memory.

    python benchmarks/speed.py                       # 256 and 512 px, float32 and bfloat16
    python benchmarks/speed.py --sizes 256 --budget 30 --precisions float32 bfloat16

Each configuration runs in its own process so the peak memory (max RSS) is its own. The
"bare pass" is one forward and backward pass of VGG-19 up to relu5_1 at the same size: the floor
for Gatys et al.'s algorithm, so a ratio near 1 means the rest of styled costs little. The loss
after the budget is re-evaluated in float32 for every precision, so the numbers compare.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONTENT = REPO / "examples" / "tubingen.jpg"
STYLE = REPO / "examples" / "starry_night.jpg"
TIMED_ITERATIONS = 20
WARMUP_ITERATIONS = 3


def measure(size: int, precision: str, budget: float, multiscale: bool = False) -> dict:
    import numpy as np
    import tensorflow as tf

    from styled import render
    from styled.engine.job import load_job, relative_to
    from styled.engine.spec import build_job_spec
    from styled.engine.types import RenderOptions
    from styled.nets.vgg import FeatureExtractor
    from styled.nets.weights import load_backbone

    spec = build_job_spec({"content": str(CONTENT), "style": [str(STYLE)], "size": size, "scales": 1,
                           "precision": precision, "iterations": WARMUP_ITERATIONS + TIMED_ITERATIONS})
    job = load_job(spec, relative_to(REPO))
    backbone = load_backbone("vgg19")
    extractor = FeatureExtractor(backbone, "avg", tf.as_dtype(precision))
    height, width = job.output_shape(size)
    bare = _bare_pass_seconds(extractor, height, width)

    timings: list[float] = []
    last = [time.perf_counter()]

    def on_progress(_event) -> None:
        now = time.perf_counter()
        timings.append(now - last[0])
        last[0] = now

    render(job, options=RenderOptions(on_progress=on_progress))
    per_iteration = float(np.median(timings[WARMUP_ITERATIONS:]))

    budget_keys = {**spec.to_dict(), "iterations": 100_000, "time_limit": budget}
    if multiscale:
        budget_keys["scales"] = None  # the default coarse-to-fine schedule
    budget_spec = build_job_spec(budget_keys)
    budget_job = load_job(budget_spec, relative_to(REPO))
    result = render(budget_job)
    loss32 = _float32_loss(budget_job, result.image, backbone)
    return {
        "size": f"{width}x{height}", "precision": precision,
        "s_per_iteration": round(per_iteration, 4), "bare_vgg_pass_s": round(bare, 4),
        "ratio": round(per_iteration / bare, 3), f"iterations_in_{budget:g}s": result.iterations,
        f"loss_after_{budget:g}s": round(loss32, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def _bare_pass_seconds(extractor, height: int, width: int) -> float:
    """Median time of one VGG-19 forward + backward pass to relu5_1 (all the layers a job uses)."""
    import numpy as np
    import tensorflow as tf

    layers = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1")

    @tf.function
    def forward_backward(image):
        with tf.GradientTape() as tape:
            tape.watch(image)
            features = extractor(image, layers)
            total = tf.add_n([tf.reduce_sum(f) for f in features.values()])
        return tape.gradient(total, image)

    image = tf.random.uniform((1, height, width, 3))
    times = []
    for _ in range(WARMUP_ITERATIONS + TIMED_ITERATIONS):
        started = time.perf_counter()
        forward_backward(image).numpy()
        times.append(time.perf_counter() - started)
    return float(np.median(times[WARMUP_ITERATIONS:]))


def _float32_loss(job, image, backbone) -> float:
    """The job's total loss of ``image`` at its output size, evaluated in float32 whatever precision
    rendered it."""
    import tensorflow as tf

    from styled.engine.gatys import collect_terms, scale_job_at
    from styled.engine.objective import compile_loss
    from styled.nets.vgg import FeatureExtractor
    from styled.plugins import make_plugin_manager

    extractor = FeatureExtractor(backbone, "avg", tf.float32)
    scale_job = scale_job_at(job, extractor, job.spec.size)
    evaluate = compile_loss(extractor, collect_terms(make_plugin_manager(), scale_job), scale_job.shape)
    return evaluate(image)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[256, 512])
    parser.add_argument("--precisions", nargs="*", default=["float32", "bfloat16"])
    parser.add_argument("--budget", type=float, default=30.0, help="seconds for the loss-after-budget run")
    parser.add_argument("--multiscale", action="store_true",
                        help="the loss-after-budget run uses the default coarse-to-fine scales")
    parser.add_argument("--one", nargs=2, metavar=("SIZE", "PRECISION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(int(args.one[0]), args.one[1], args.budget, args.multiscale)))
        return
    rows = []
    for size in args.sizes:
        for precision in args.precisions:
            command = [sys.executable, __file__, "--one", str(size), precision, "--budget", str(args.budget)]
            done = subprocess.run(command + (["--multiscale"] if args.multiscale else []),
                                  capture_output=True, text=True, check=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    _print_table(rows)


def _print_table(rows: list[dict]) -> None:
    columns = list(rows[0])
    print("\n| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in columns) + " |")


if __name__ == "__main__":
    main()
