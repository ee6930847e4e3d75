"""Start-up: the seconds a render spends outside its iterations, and a one-off AdaIN command's
seconds beyond importing TensorFlow.

    python benchmarks/startup.py                  # both, medians over --repeats runs
    python benchmarks/startup.py --scales 1       # a single-scale render instead of the default two

The render part runs in this process with the weights loaded once (as the daemon does): a 256 px,
20-iteration render of Tübingen in the style of The Starry Night, ``convergence: 0`` so that every
scale runs its 20 iterations. "Outside" is the render's wall time minus its iterations at the
median seconds per iteration (the differences of the history's stamps within a scale). The first
run in a process is printed but not in the median. The command part times fresh processes:
``python -c "import tensorflow"`` and ``styled render ... --set method=adain`` at 512 px.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
IMAGES = Path(__file__).resolve().parents[2] / "shared" / "images"
CONTENT, STYLE = IMAGES / "content" / "tubingen.jpg", IMAGES / "style" / "starry_night.jpg"


def render_outside_iterations(scales: int | None, repeats: int) -> list[float]:
    from styled import render
    from styled.engine.job import load_job, relative_to
    from styled.engine.spec import build_job_spec
    from styled.engine.types import RenderOptions
    from styled.nets.weights import load_backbone

    backbone = load_backbone("vgg19")
    data = {"content": str(CONTENT), "style": [str(STYLE)], "size": 256, "iterations": 20, "convergence": 0,
            **({"scales": scales} if scales else {})}
    outside = []
    for run in range(repeats + 1):
        job = load_job(build_job_spec(data), relative_to(Path.cwd()))
        started = time.perf_counter()
        result = render(job, options=RenderOptions(backbones=lambda name, path: backbone))
        wall = time.perf_counter() - started
        history = result.history
        steps = [b["seconds"] - a["seconds"] for a, b in zip(history, history[1:]) if a["scale"] == b["scale"]]
        per_iteration = statistics.median(steps)
        outside.append(wall - per_iteration * result.iterations)
        print(f"render {run + 1}: {wall:.2f} s, {result.iterations} iterations at {per_iteration:.3f} s, "
              f"{outside[-1]:.2f} s outside them{' (first in the process)' if run == 0 else ''}", flush=True)
    return outside[1:]


def seconds_of(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def adain_beyond_import(repeats: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as folder:
        imports = [seconds_of([sys.executable, "-c", "import tensorflow"]) for _ in range(repeats)]
        commands = [seconds_of([sys.executable, "-m", "styled.cli", "render", str(CONTENT), str(STYLE), "-o",
                                str(Path(folder) / "out.png"), "--size", "512", "--set", "method=adain", "--quiet"])
                    for _ in range(repeats)]
    print(f"import tensorflow: {', '.join(f'{s:.2f}' for s in imports)} s; styled render --set method=adain: "
          f"{', '.join(f'{s:.2f}' for s in commands)} s", flush=True)
    return statistics.median(imports), statistics.median(commands)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, default=None, help="scales of the render (default: auto, two)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    outside = render_outside_iterations(args.scales, args.repeats)
    imported, command = adain_beyond_import(args.repeats)
    print(f"a 20-iteration 256 px render: median {statistics.median(outside):.2f} s outside its iterations")
    print(f"a one-off AdaIN render at 512 px: median {command:.2f} s, {command - imported:.2f} s beyond importing "
          f"TensorFlow ({imported:.2f} s)")


if __name__ == "__main__":
    main()
